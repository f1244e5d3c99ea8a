// One persona: what it is (editable, saved through the API, refusals shown
// next to their field), where it runs and why, and where it has been.

import { useEffect, useState } from "react";
import { StateBadge } from "./nodes.jsx";
import { where } from "./graph.js";

const BOOT_FIELDS = {
  "linux-nfs": [["nfs_root", "NFS root (server:/path)"], ["kernel", "kernel"], ["initrd", "initrd"]],
  iscsi: [["target_iqn", "target IQN"], ["target_portal", "portal (ip:port)"], ["lun", "LUN"]],
  fc: [["target_wwpn", "target WWPN"], ["lun", "LUN"]],
};

function Field({ label, error, children }) {
  return (
    <label className={`field ${error ? "has-error" : ""}`}>
      <span>{label}</span>
      {children}
      {error ? <div className="error" role="alert">{error}</div> : null}
    </label>
  );
}

function toDraft(p) {
  return JSON.parse(JSON.stringify(p));
}

export default function PersonaPanel({ api, persona, status, networks, onAction, onDeleted }) {
  const [draft, setDraft] = useState(() => toDraft(persona));
  const [errors, setErrors] = useState({});
  const [banner, setBanner] = useState(null);
  const [detail, setDetail] = useState(null);
  const [preview, setPreview] = useState(null);
  const [moveKind, setMoveKind] = useState("");
  // unsaved edits win over a refresh from the event stream: a refresh that
  // lands while the operator types must not put the old values back
  const [dirty, setDirty] = useState(false);
  const [shown, setShown] = useState(persona.name);

  useEffect(() => {
    const another = persona.name !== shown;
    if (another) {
      setShown(persona.name);
      setDirty(false);
    } else if (dirty) {
      setBanner({ ok: false, text: "changed elsewhere while you edit: Save keeps your values, Revert takes the new ones" });
      return;
    }
    // the refresh a save sets off (the event stream's copy of what was just
    // saved) may land after the save's answer: it keeps the "saved" banner
    setDraft(toDraft(persona)); setErrors({}); setPreview(null);
    setBanner((b) => (!another && b?.ok ? b : null));
  }, [persona]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    let live = true;
    api.get(`/personas/${encodeURIComponent(persona.name)}/status`).then((d) => live && setDetail(d)).catch(() => {});
    return () => { live = false; };
  }, [api, persona.name, status]);

  const set = (path, value) => {
    setDirty(true);
    setDraft((old) => {
      const out = toDraft(old);
      let at = out;
      const keys = path.split(".");
      keys.slice(0, -1).forEach((k) => { at = at[k] ??= {}; });
      const last = keys[keys.length - 1];
      if (value === "" || value === null) delete at[last];
      else at[last] = value;
      return out;
    });
  };
  const err = (path) => errors[path];

  async function save() {
    try {
      const saved = await api.put(`/personas/${encodeURIComponent(persona.name)}`, draft);
      setDraft(toDraft(saved));
      setDirty(false);
      setErrors({});
      setBanner({ ok: true, text: "saved" });
    } catch (e) {
      setErrors(e.fields || {});
      setBanner({ ok: false, text: e.message });
    }
  }

  async function act(path, body) {
    try {
      await onAction(path, body);
      setBanner(null);
    } catch (e) {
      setBanner({ ok: false, text: e.message });
    }
  }

  async function explain() {
    try {
      setPreview(await api.get(`/personas/${encodeURIComponent(persona.name)}/place`));
    } catch (e) {
      setBanner({ ok: false, text: e.message });
    }
  }

  async function remove() {
    try {
      await api.del(`/personas/${encodeURIComponent(persona.name)}`);
      onDeleted();
    } catch (e) {
      setBanner({ ok: false, text: e.message });
    }
  }

  const state = status ? status.state : "stopped";
  const boot = draft.boot || "linux-nfs";
  const prefer = (draft.policy && draft.policy.prefer) || ["vm", "physical"];
  return (
    <div className="panel" data-panel="persona">
      <h2>{persona.name} <StateBadge state={state} /></h2>
      <div className="where">{where(status)}{status && status.reason ? ` — ${status.reason}` : ""}</div>
      {status && status.why ? <div className="why" data-why>placed: {status.why}</div> : null}
      <div className="actions">
        <button onClick={() => act(`/personas/${persona.name}/start`, {})}>Start</button>
        <button onClick={() => act(`/personas/${persona.name}/stop`)}>Stop</button>
        <select value={moveKind} onChange={(e) => setMoveKind(e.target.value)} aria-label="move to">
          <option value="">anywhere else</option><option value="vm">a VM</option><option value="physical">a physical server</option>
        </select>
        <button onClick={() => act(`/personas/${persona.name}/move`, moveKind ? { kind: moveKind } : {})}>Move</button>
        <button onClick={explain}>Where would it go?</button>
      </div>
      {state === "blocked" ? (
        <button className="danger" onClick={() => {
          const reason = window.prompt("What did you see that proves the old machine cannot run it?");
          if (reason) act(`/personas/${persona.name}/confirm-dead`, { reason });
        }}>Confirm dead…</button>
      ) : null}
      {banner ? <div className={banner.ok ? "ok" : "error banner"} role="alert">{banner.text}</div> : null}
      {preview ? (
        <pre className="preview" data-preview>
          {preview.ok ? `would go to ${preview.kind === "vm" ? "a VM on" : ""} ${preview.host}: ${preview.why}` : `fits nowhere: ${preview.why}`}
          {Object.entries(preview.ruled_out || {}).map(([kind, filters]) => `\n${kind}: ` + filters.map((f) => `${f.machines} ruled out by ${f.filter}`).join(", ")).join("")}
        </pre>
      ) : null}

      <h3>Resources and placement</h3>
      <Field label="description" error={err("description")}>
        <input value={draft.description || ""} onChange={(e) => set("description", e.target.value)} />
      </Field>
      <div className="row">
        <Field label="vCPUs" error={err("cpus")}>
          <input name="cpus" value={draft.cpus ?? ""} onChange={(e) => set("cpus", e.target.value === "" ? "" : Number(e.target.value))} />
        </Field>
        <Field label="memory (MiB or 4GiB)" error={err("memory")}>
          <input name="memory" value={draft.memory ?? ""} onChange={(e) => set("memory", /^\d+$/.test(e.target.value) ? Number(e.target.value) : e.target.value)} />
        </Field>
      </div>
      <Field label="prefer" error={err("policy.prefer")}>
        <select name="prefer" value={prefer.join(",")} onChange={(e) => set("policy.prefer", e.target.value.split(","))}>
          <option value="vm,physical">a VM, else a physical server</option>
          <option value="physical,vm">a physical server, else a VM</option>
          <option value="vm">a VM only</option>
          <option value="physical">a physical server only</option>
        </select>
      </Field>
      <Field label="anti-affinity set" error={err("policy.anti_affinity")}>
        <input value={(draft.policy && draft.policy.anti_affinity) || ""} onChange={(e) => set("policy.anti_affinity", e.target.value)} />
      </Field>

      <h3>Boot and image</h3>
      <Field label="boot" error={err("boot")}>
        <select value={boot} onChange={(e) => set("boot", e.target.value)}>
          <option value="linux-nfs">Linux, NFS root</option><option value="iscsi">iSCSI LUN</option><option value="fc">FC LUN</option>
        </select>
      </Field>
      {draft.image && draft.image.template ? <div className="muted">from template {draft.image.template}</div> : null}
      {BOOT_FIELDS[boot].map(([key, label]) => (
        <Field key={key} label={label} error={err(`image.${key}`) || (key === BOOT_FIELDS[boot][0][0] ? err("image") || err("") : null)}>
          <input name={`image.${key}`} value={(draft.image && draft.image[key]) ?? ""}
                 onChange={(e) => set(`image.${key}`, key === "lun" && /^\d+$/.test(e.target.value) ? Number(e.target.value) : e.target.value)} />
        </Field>
      ))}

      <h3>vNICs</h3>
      <table className="vnics">
        <thead><tr><th>network</th><th>IP</th><th>MAC</th><th>boot</th><th /></tr></thead>
        <tbody>
          {(draft.vnics || []).map((v, i) => (
            <tr key={i} data-vnic={i}>
              <td>
                <select value={v.network} onChange={(e) => set(`vnics.${i}.network`, e.target.value)}>
                  {networks.map((n) => <option key={n.name} value={n.name}>{n.name}</option>)}
                </select>
                {err(`vnics.${i}.network`) ? <div className="error" role="alert">{err(`vnics.${i}.network`)}</div> : null}
              </td>
              <td>
                <input name={`vnics.${i}.ip`} value={v.ip ?? ""} placeholder="from the subnet" onChange={(e) => set(`vnics.${i}.ip`, e.target.value)} />
                {err(`vnics.${i}.ip`) ? <div className="error" role="alert">{err(`vnics.${i}.ip`)}</div> : null}
              </td>
              <td className="mono">{v.mac || "assigned on save"}</td>
              <td><input type="checkbox" checked={!!v.boot} onChange={(e) => set(`vnics.${i}.boot`, e.target.checked)} /></td>
              <td><button title="remove this vNIC" onClick={() => { setDirty(true); setDraft((o) => ({ ...o, vnics: o.vnics.filter((_, j) => j !== i) })); }}>✕</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {err("vnics") ? <div className="error" role="alert">{err("vnics")}</div> : null}
      <div className="actions">
        <button className="primary" onClick={save}>Save</button>
        <button onClick={() => { setDraft(toDraft(persona)); setDirty(false); setErrors({}); setBanner(null); }}>Revert</button>
        <button className="danger" onClick={remove}>Delete</button>
      </div>

      <h3>Where it has been</h3>
      <table className="history">
        <thead><tr><th>gen</th><th>where</th><th>started</th><th>ended</th><th>why</th></tr></thead>
        <tbody>
          {((detail && detail.incarnations) || []).slice().reverse().map((inc) => (
            <tr key={inc.generation} data-generation={inc.generation}>
              <td>{inc.generation}</td>
              <td>{inc.kind === "vm" ? `VM on ${inc.host}` : inc.host}</td>
              <td>{inc.started_at ? new Date(inc.started_at).toLocaleTimeString() : ""}</td>
              <td>{inc.ended_at ? new Date(inc.ended_at).toLocaleTimeString() : "—"}</td>
              <td>{inc.why}{inc.evidence ? ` · ended: ${inc.evidence}` : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {detail && detail.agent ? (
        <div className="agent">agent: {detail.agent.ready ? "ready" : "not ready"}, last heartbeat {detail.agent.last_heartbeat_age}s ago;
          addresses {Object.entries(detail.agent.addresses || {}).map(([k, v]) => `${k} ${[].concat(v).join(" ")}`).join(", ")}</div>
      ) : null}
    </div>
  );
}
