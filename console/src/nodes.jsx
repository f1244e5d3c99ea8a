// How each kind of thing looks on the diagram.

import { BaseEdge, EdgeLabelRenderer, Handle, Position, getBezierPath, getStraightPath } from "@xyflow/react";
import { STATE_COLOURS, memory, pending, portText, where } from "./graph.js";

export function StateBadge({ state }) {
  return (
    <span className="badge" data-state={state} style={{ background: STATE_COLOURS[state] || "#ccc" }}>
      {state}
    </span>
  );
}

function PersonaNode({ data, selected }) {
  const { persona, status, trail, dim } = data;
  const state = status ? status.state : "stopped";
  const recent = (trail || []).filter((t) => Date.now() - t.at < 120_000);
  return (
    <div className={`node persona ${selected ? "selected" : ""} ${dim ? "dim" : ""}`} data-persona={persona.name}
         style={{ borderColor: STATE_COLOURS[state] }}>
      <Handle type="source" position={Position.Right} className="plug" title="drag to a network to add a vNIC" />
      <Handle type="target" position={Position.Left} className="dep" isConnectable={false} />
      <div className="title">{persona.name}</div>
      <div className="sub"><StateBadge state={state} /> {where(status)}</div>
      {recent.length > 1 ? <div className="trail" title="states it went through in the last two minutes">{recent.map((t) => t.to).join(" → ")}</div> : null}
    </div>
  );
}

function NetworkNode({ data, selected }) {
  const { network, dim } = data;
  return (
    <div className={`node network ${selected ? "selected" : ""} ${dim ? "dim" : ""}`} data-network={network.name}>
      <Handle type="target" position={Position.Left} className="socket" />
      <div className="title">⇄ {network.name}</div>
      <div className="sub">VLAN {network.vlan} · {network.subnet}</div>
    </div>
  );
}

function GroupNode({ data, selected }) {
  return (
    <div className={`frame ${selected ? "selected" : ""}`} data-group={data.group.name}>
      <div className="frame-title">{data.group.name} <span className="muted">desired {data.group.desired}</span></div>
    </div>
  );
}

function HostNode({ data }) {
  const { host, physical, fenced, dim } = data;
  return (
    <div className={`node host ${fenced ? "fenced" : ""} ${dim ? "dim" : ""}`} data-host={host.name}>
      <Handle type="source" position={Position.Right} isConnectable={false} />
      <div className="title">{host.hypervisor ? "▣" : "▤"} {host.name}</div>
      <div className="sub">{host.model || ""} · {host.cpus} CPU · {memory(host.memory)}</div>
      {fenced ? <div className="sub"><span className="badge" style={{ background: STATE_COLOURS.fenced }}>fenced</span> {fenced.reason}</div> : null}
      {physical ? <div className="sub">runs <b>{physical.persona}</b> <StateBadge state={physical.status.state} /></div>
        : host.hypervisor ? <div className="sub muted">hypervisor ({host.hypervisor.driver})</div> : <div className="sub muted">idle</div>}
    </div>
  );
}

function VmNode({ data }) {
  return (
    <div className="node vm" data-vm={data.persona} style={{ borderColor: STATE_COLOURS[data.status.state] }}>
      VM <b>{data.persona}</b> <StateBadge state={data.status.state} />
    </div>
  );
}

function SwitchNode({ data }) {
  const { switch: sw, ports, dim } = data;
  return (
    <div className={`node switch ${dim ? "dim" : ""}`} data-switch={sw.name}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <div className="title">⇶ {sw.name} <span className="muted">{sw.model || sw.driver}</span></div>
      {ports.map((c) => {
        const cfg = c.confirmed || c.planned;
        return (
          <div key={c.port} className={`port ${cfg && !cfg.admin_up ? "shut" : ""} ${pending(c) ? "pending" : ""}`}
               data-port={c.port} title={portText(c)}>
            {c.port}: {c.host}/{c.nic} {cfg ? (cfg.mode === "trunk" ? `T ${cfg.tagged.join(",") || "-"}` : `A ${cfg.native_vlan}`) : "·"}
            {cfg && cfg.native_vlan && cfg.mode === "trunk" ? ` U ${cfg.native_vlan}` : ""}
          </div>
        );
      })}
    </div>
  );
}

function CableEdge({ id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, label, data, selected }) {
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  return (
    <>
      <BaseEdge id={id} path={path} className={`cable ${data && data.live ? "live" : ""} ${selected ? "selected" : ""}`} />
      {label ? (
        <EdgeLabelRenderer>
          <div className="edge-label" style={{ transform: `translate(-50%, -50%) translate(${labelX}px,${labelY}px)` }}>{label}</div>
        </EdgeLabelRenderer>
      ) : null}
    </>
  );
}

function DependsEdge({ id, sourceX, sourceY, targetX, targetY }) {
  const [path] = getStraightPath({ sourceX, sourceY, targetX, targetY });
  return <BaseEdge id={id} path={path} className="depends" />;
}

export const nodeTypes = { persona: PersonaNode, network: NetworkNode, group: GroupNode, host: HostNode, vm: VmNode, switch: SwitchNode };
export const edgeTypes = { cable: CableEdge, depends: DependsEdge };
