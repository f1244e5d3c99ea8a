// Side panels for a group frame and for a vSwitch.

import { useState } from "react";
import { StateBadge } from "./nodes.jsx";
import { where } from "./graph.js";

export function GroupPanel({ api, group, personas, status, onAction, run }) {
  const [add, setAdd] = useState("");
  const outside = personas.filter((p) => !group.members.includes(p.name));
  const put = (members) => run(() => api.patch(`/groups/${encodeURIComponent(group.name)}`, { members }));
  return (
    <div className="panel" data-panel="group">
      <h2>group {group.name}</h2>
      <div className="muted">{group.description} desired {group.desired}</div>
      <div className="actions">
        <button className="primary" onClick={() => onAction(`/groups/${group.name}/start`, { partial: false })}>Start group</button>
        <button onClick={() => onAction(`/groups/${group.name}/stop`)}>Stop group</button>
      </div>
      <h3>Members (started in dependency order)</h3>
      <table>
        <tbody>
          {group.members.map((m) => (
            <tr key={m}>
              <td>{m}</td>
              <td><StateBadge state={status[m] ? status[m].state : "stopped"} /></td>
              <td>{where(status[m])}</td>
              <td className="muted">{(group.depends[m] || []).length ? `needs ${group.depends[m].join(", ")}` : ""}</td>
              <td><button title="remove from the group" onClick={() => put(group.members.filter((x) => x !== m))}>✕</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {outside.length ? (
        <div className="row">
          <select aria-label="add member" value={add} onChange={(e) => setAdd(e.target.value)}>
            <option value="">add a persona…</option>
            {outside.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
          </select>
          <button disabled={!add} onClick={() => { put([...group.members, add]); setAdd(""); }}>Add</button>
        </div>
      ) : null}
    </div>
  );
}

export function NetworkPanel({ network, personas }) {
  const attached = personas.flatMap((p) => p.vnics.filter((v) => v.network === network.name).map((v) => ({ persona: p.name, ...v })));
  return (
    <div className="panel" data-panel="network">
      <h2>vSwitch {network.name}</h2>
      <div>VLAN {network.vlan} · {network.subnet}{network.gateway ? ` · gateway ${network.gateway}` : ""}</div>
      <div className="muted">{network.description}</div>
      <h3>Cabled personas</h3>
      <table>
        <tbody>
          {attached.map((a) => <tr key={`${a.persona}-${a.mac}`}><td>{a.persona}</td><td className="mono">{a.ip}</td><td className="mono">{a.mac}</td></tr>)}
        </tbody>
      </table>
    </div>
  );
}
