// Turns what the API says (inventory, runtime status, fabric) into the two
// diagrams' nodes and edges. Pure functions: the views draw them, the tests
// check them, and the layout places them.

export const SIZE = {
  persona: { width: 190, height: 76 },
  network: { width: 170, height: 64 },
  host: { width: 230, height: 86 },
  vm: { width: 190, height: 40 },
  switch: { width: 230, height: 46 },
};
const PORT_ROW = 17;
const VM_ROW = 48;

// The states an operator watches for, and the colour each one wears.
export const STATE_COLOURS = {
  stopped: "#9aa0a6",
  waiting: "#b39ddb",
  pending: "#ffb74d",
  placing: "#4fc3f7",
  "powering-on": "#29b6f6",
  booting: "#0288d1",
  running: "#43a047",
  stopping: "#8d6e63",
  suspect: "#fdd835",
  fencing: "#fb8c00",
  fenced: "#e53935",
  blocked: "#b71c1c",
  failed: "#880e4f",
};

export function statusByName(status) {
  const out = {};
  for (const s of (status && status.personas) || []) out[s.name] = s;
  return out;
}

export function memory(m) {
  return typeof m === "number" ? `${m >= 1024 ? `${+(m / 1024).toFixed(1)} GiB` : `${m} MiB`}` : String(m);
}

export function where(st) {
  if (!st || !st.machine) return "not running";
  return st.machine.kind === "vm" ? `VM on ${st.machine.host}` : `on ${st.machine.host}`;
}

function firstGroupOf(groups) {
  const out = {};
  for (const g of groups) for (const m of g.members) if (!(m in out)) out[m] = g.name;
  return out;
}

// Personas cabled to networks, inside frames for their groups.
export function virtualGraph({ personas, networks, groups, status, trails = {} }, { match = "" } = {}) {
  const st = statusByName(status);
  const groupOf = firstGroupOf(groups);
  const nodes = [];
  const edges = [];
  for (const g of groups) {
    nodes.push({ id: `g:${g.name}`, type: "group", data: { group: g }, position: { x: 0, y: 0 } });
  }
  for (const p of personas) {
    const group = groupOf[p.name];
    nodes.push({
      id: `p:${p.name}`,
      type: "persona",
      data: { persona: p, status: st[p.name], trail: trails[p.name], dim: match && !p.name.includes(match) },
      position: { x: 0, y: 0 },
      ...(group ? { parentId: `g:${group}`, extent: "parent" } : {}),
      ...SIZE.persona,
    });
    p.vnics.forEach((v, i) => {
      edges.push({
        id: `v:${p.name}:${i}`,
        source: `p:${p.name}`,
        target: `n:${v.network}`,
        type: "cable",
        data: { persona: p.name, index: i, vnic: v, live: !!(st[p.name] && st[p.name].machine) },
        label: v.ip ? String(v.ip) : "",
      });
    });
  }
  for (const g of groups) {
    for (const [member, needs] of Object.entries(g.depends || {})) {
      for (const n of needs) {
        edges.push({ id: `d:${member}:${n}`, source: `p:${member}`, target: `p:${n}`, type: "depends",
                     data: { group: g.name }, selectable: false, deletable: false });
      }
    }
  }
  for (const n of networks) {
    nodes.push({ id: `n:${n.name}`, type: "network", data: { network: n, dim: match && !n.name.includes(match) },
                 position: { x: 0, y: 0 }, ...SIZE.network });
  }
  return { nodes, edges };
}

function vlanText(cfg) {
  if (!cfg) return "not configured by voe";
  const state = cfg.admin_up ? "" : " (shut)";
  if (cfg.mode === "access") return `access ${cfg.native_vlan ?? "-"}${state}`;
  const tagged = cfg.tagged.length ? cfg.tagged.join(",") : "none";
  return `trunk ${tagged}${cfg.native_vlan ? ` native ${cfg.native_vlan}` : ""}${state}`;
}

// The switch has not yet confirmed what the live incarnations need.
export function pending(cable) {
  const { planned, confirmed } = cable;
  if (!planned) return false;
  if (!confirmed) return planned.tagged.length > 0 || !planned.admin_up;
  return JSON.stringify(planned) !== JSON.stringify(confirmed);
}

export function portText(cable) {
  const cfg = cable.confirmed || cable.planned;
  return `${cable.nic} ↔ ${cable.switch}:${cable.port} ${vlanText(cfg)}${pending(cable) ? " (pending)" : ""}`;
}

// Hosts (hypervisor hosts holding their VMs), switches, and the cables
// between NICs and ports with each port's VLANs.
export function physicalGraph({ hosts, switches, personas, status, fabric }, { match = "" } = {}) {
  const st = statusByName(status);
  const fenced = (fabric && fabric.fenced) || {};
  const nodes = [];
  const edges = [];
  const runningOn = {};
  for (const p of personas) {
    const m = st[p.name] && st[p.name].machine;
    if (m) (runningOn[m.host] ||= []).push({ persona: p.name, kind: m.kind, status: st[p.name] });
  }
  for (const h of hosts) {
    const here = runningOn[h.name] || [];
    const vms = here.filter((r) => r.kind === "vm");
    const physical = here.find((r) => r.kind === "physical");
    nodes.push({
      id: `h:${h.name}`,
      type: "host",
      data: { host: h, physical, fenced: fenced[h.name], vms: vms.length,
              dim: match && !h.name.includes(match) && !here.some((r) => r.persona.includes(match)) },
      position: { x: 0, y: 0 },
      width: SIZE.host.width,
      height: SIZE.host.height + (h.hypervisor ? VM_ROW * Math.max(vms.length, 1) + 8 : 0),
    });
    vms.forEach((vm, i) => {
      nodes.push({ id: `vm:${vm.persona}`, type: "vm", parentId: `h:${h.name}`, extent: "parent",
                   data: vm, position: { x: 20, y: SIZE.host.height + i * VM_ROW }, draggable: false, ...SIZE.vm });
    });
  }
  const cables = (fabric && fabric.cables) || [];
  for (const sw of switches) {
    const ports = cables.filter((c) => c.switch === sw.name);
    nodes.push({ id: `s:${sw.name}`, type: "switch", data: { switch: sw, ports, dim: match && !sw.name.includes(match) },
                 position: { x: 0, y: 0 }, width: SIZE.switch.width, height: SIZE.switch.height + PORT_ROW * ports.length });
  }
  for (const c of cables) {
    const cfg = c.confirmed || c.planned;
    edges.push({ id: `c:${c.host}:${c.nic}`, source: `h:${c.host}`, target: `s:${c.switch}`, type: "cable",
                 title: portText(c), data: { cable: c, live: !!(cfg && cfg.admin_up && cfg.tagged.length + (cfg.native_vlan ? 1 : 0)) },
                 selectable: false, deletable: false });
  }
  return { nodes, edges };
}

// The next free name like "web-4" for a copy of "web-1".
export function nextName(base, taken) {
  const stem = base.replace(/-\d+$/, "");
  for (let i = 1; ; i += 1) {
    const name = `${stem}-${i}`;
    if (!taken.has(name)) return name;
  }
}

// A persona's spec as a copy: new name, no MAC, IP or initiator, so the
// controller gives the copy an identity of its own; image paths that carry
// the original's name (an NFS root, a target IQN) are renamed with it, so the
// copy never shares the original's disk.
export function cloneSpec(p, name) {
  const image = Object.fromEntries(Object.entries(p.image || {}).map(
    ([k, v]) => [k, typeof v === "string" ? v.split(p.name).join(name) : v]));
  return { ...p, name, desired: "stopped", image, san: {}, labels: { ...(p.labels || {}) },
           vnics: p.vnics.map(({ network, dedicated, boot }) => ({ network, dedicated, boot })) };
}
