// What can be dragged onto the diagram: new personas of each boot kind,
// copies of the selected one, and new vSwitches.

import { useState } from "react";

function drag(spec) {
  return (e) => {
    e.dataTransfer.setData("application/voe-template", JSON.stringify(spec));
    e.dataTransfer.effectAllowed = "copy";
  };
}

// Storage locations follow the datacenter's existing personas, so a new one
// lands beside them (the operator edits them in the side panel).
export function blankPersona(kind, personas) {
  const like = personas.find((p) => p.boot === kind && p.image);
  if (kind === "iscsi") {
    const portal = like && like.image.target_portal;
    const prefix = like && like.image.target_iqn ? like.image.target_iqn.replace(/[^.:]+$/, "") : "iqn.2026-11.io.voe:";
    return { boot: "iscsi", image: { target_iqn: `${prefix}{name}`, ...(portal ? { target_portal: portal } : {}), lun: 1 } };
  }
  const root = like && like.image.nfs_root ? like.image.nfs_root.replace(/[^/]+$/, "{name}") : "nfs:/export/personas/{name}";
  return { boot: "linux-nfs", image: { nfs_root: root } };
}

// Templates are cloned by the controller: the new persona gets its own copy
// of the image and a fresh identity.
export default function Palette({ personas, selectedPersona, onCreate, onAddNetwork, templates }) {
  const [net, setNet] = useState({ name: "", vlan: "", subnet: "" });
  const [error, setError] = useState(null);
  const items = [
    { label: "Linux server (NFS root)", spec: { stem: "server", ...blankPersona("linux-nfs", personas) } },
    { label: "SAN-booted server (iSCSI)", spec: { stem: "san", ...blankPersona("iscsi", personas) } },
    ...(templates || []).map((t) => ({ label: `${t.name}: ${t.description || t.boot} (v${t.version})`,
                                       spec: { stem: t.name, template: t.name } })),
  ];
  return (
    <div className="palette">
      <h3>Palette</h3>
      <p className="muted">Drag onto the diagram, or click.</p>
      {items.map((it) => (
        <div key={it.label} className="palette-item" draggable onDragStart={drag(it.spec)} onClick={() => onCreate(it.spec)}
             data-palette={it.spec.stem}>
          + {it.label}
        </div>
      ))}
      {selectedPersona ? (
        <div className="palette-item" draggable onDragStart={drag({ clone: selectedPersona.name })}
             onClick={() => onCreate({ clone: selectedPersona.name })} data-palette="clone">
          + copy of {selectedPersona.name}
        </div>
      ) : null}
      <h3>New vSwitch</h3>
      <form onSubmit={async (e) => {
        e.preventDefault();
        try {
          await onAddNetwork({ name: net.name, vlan: Number(net.vlan), subnet: net.subnet });
          setNet({ name: "", vlan: "", subnet: "" });
          setError(null);
        } catch (err) {
          setError(err.message);
        }
      }}>
        <input placeholder="name" value={net.name} onChange={(e) => setNet({ ...net, name: e.target.value })} />
        <input placeholder="VLAN" value={net.vlan} onChange={(e) => setNet({ ...net, vlan: e.target.value })} />
        <input placeholder="subnet e.g. 10.0.9.0/24" value={net.subnet} onChange={(e) => setNet({ ...net, subnet: e.target.value })} />
        <button type="submit">Add</button>
        {error ? <div className="error" role="alert">{error}</div> : null}
      </form>
    </div>
  );
}
