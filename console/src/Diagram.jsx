// One React Flow canvas. The layout runs when the set of things drawn
// changes (a persona added, a VM started elsewhere); a status change only
// repaints. Nodes an operator drags stay where they were put.

import { Background, Controls, MiniMap, ReactFlow, useReactFlow } from "@xyflow/react";
import { useEffect, useMemo, useRef, useState } from "react";
import { layout } from "./layout.js";
import { edgeTypes, nodeTypes } from "./nodes.jsx";
import { STATE_COLOURS } from "./graph.js";

function loadSaved(view) {
  try {
    return JSON.parse(localStorage.getItem(`voe.layout.${view}`) || "{}");
  } catch {
    return {};
  }
}

function shapeOf(graph) {
  return graph.nodes.map((n) => `${n.id}@${n.parentId || ""}:${n.height}`).join("|") + "#" + graph.edges.map((e) => e.id).join("|");
}

export default function Diagram({ view, graph, focus, onSelect, onConnect, onEdgesDelete, onDropPersona, selected }) {
  const [nodes, setNodes] = useState([]);
  const positions = useRef({});
  const shape = useMemo(() => shapeOf(graph), [graph]);
  const flow = useReactFlow();
  const [ready, setReady] = useState(false);

  useEffect(() => {
    let cancelled = false;
    const saved = loadSaved(view);
    layout(graph, saved).then((placed) => {
      if (cancelled) return;
      positions.current = Object.fromEntries(placed.map((n) => [n.id, n]));
      setNodes(placed);
      setReady(true);
    });
    return () => { cancelled = true; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, view]);

  // status only: keep positions, refresh what each node shows
  const shown = useMemo(() => nodes.map((n) => {
    const fresh = graph.nodes.find((g) => g.id === n.id);
    return fresh ? { ...n, data: fresh.data, selected: selected.has(n.id) } : n;
  }), [nodes, graph, selected]);

  useEffect(() => {
    if (ready) flow.fitView({ padding: 0.1, duration: 200 });
  }, [ready, view, flow]);

  useEffect(() => {
    if (!focus) return;
    const n = positions.current[focus];
    if (n) flow.fitView({ nodes: [{ id: focus }], duration: 300, maxZoom: 1.4 });
  }, [focus, flow]);

  const onNodesChange = (changes) => {
    setNodes((old) => {
      const byId = new Map(old.map((n) => [n.id, n]));
      for (const c of changes) {
        if (c.type === "position" && c.position && byId.has(c.id)) byId.set(c.id, { ...byId.get(c.id), position: c.position });
        if (c.type === "dimensions" && c.dimensions && byId.has(c.id)) byId.set(c.id, { ...byId.get(c.id), measured: c.dimensions });
      }
      return [...byId.values()];
    });
  };

  const onNodeDragStop = (_e, node) => {
    const saved = loadSaved(view);
    saved[node.id] = node.position;
    localStorage.setItem(`voe.layout.${view}`, JSON.stringify(saved));
  };

  return (
    <ReactFlow
      nodes={shown}
      edges={graph.edges}
      nodeTypes={nodeTypes}
      edgeTypes={edgeTypes}
      onNodesChange={onNodesChange}
      onNodeDragStop={onNodeDragStop}
      onNodeClick={(e, n) => onSelect(n, e.shiftKey || e.metaKey || e.ctrlKey)}
      onPaneClick={() => onSelect(null, false)}
      onConnect={onConnect}
      onEdgesDelete={onEdgesDelete}
      isValidConnection={(c) => c.source.startsWith("p:") && c.target.startsWith("n:")}
      onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; }}
      onDrop={(e) => {
        e.preventDefault();
        const template = e.dataTransfer.getData("application/voe-template");
        if (onDropPersona && template) onDropPersona(JSON.parse(template), flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
      }}
      deleteKeyCode={["Delete", "Backspace"]}
      minZoom={0.05}
      maxZoom={2.5}
      onlyRenderVisibleElements
      proOptions={{ hideAttribution: true }}
    >
      <Background gap={24} />
      <MiniMap pannable zoomable nodeColor={(n) => (n.data && n.data.status ? STATE_COLOURS[n.data.status.state] : "#ddd")} />
      <Controls />
    </ReactFlow>
  );
}
