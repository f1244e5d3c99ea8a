// Automatic layout with ELK's layered algorithm: groups become compound
// nodes (frames) sized around their members, so 200 personas and 20
// networks come out as readable columns instead of a heap. Positions an
// operator dragged by hand are kept (per view, in the browser) and win.

import ELK from "elkjs/lib/elk.bundled.js";

const elk = new ELK();

const OPTIONS = {
  "elk.algorithm": "layered",
  "elk.direction": "RIGHT",
  "elk.hierarchyHandling": "INCLUDE_CHILDREN",
  "elk.layered.spacing.nodeNodeBetweenLayers": "120",
  "elk.spacing.nodeNode": "28",
  "elk.padding": "[top=36,left=16,bottom=16,right=16]",
  "elk.layered.crossingMinimization.strategy": "LAYER_SWEEP",
};

export async function layout({ nodes, edges }, saved = {}) {
  const byId = new Map(nodes.map((n) => [n.id, n.type === "group" ? { id: n.id, children: [] } : { id: n.id, width: n.width, height: n.height }]));
  const roots = [];
  for (const n of nodes) {
    if (n.parentId && byId.has(n.parentId) && n.type !== "vm") byId.get(n.parentId).children.push(byId.get(n.id));
    else if (!n.parentId) roots.push(byId.get(n.id));
  }
  // a group frame without members still needs a size
  for (const n of nodes) {
    const e = byId.get(n.id);
    if (n.type === "group" && e.children.length === 0) Object.assign(e, { width: 200, height: 80 });
    if (n.type === "group") e.layoutOptions = { "elk.padding": "[top=36,left=16,bottom=16,right=16]" };
  }
  const known = new Set(nodes.filter((n) => n.type !== "vm").map((n) => n.id));
  const graph = {
    id: "root",
    layoutOptions: OPTIONS,
    children: roots,
    edges: edges.filter((e) => known.has(e.source) && known.has(e.target))
      .map((e) => ({ id: e.id, sources: [e.source], targets: [e.target] })),
  };
  const placed = await elk.layout(graph);
  const boxes = new Map();
  const walk = (children) => {
    for (const c of children || []) {
      boxes.set(c.id, c);
      walk(c.children);
    }
  };
  walk(placed.children);
  return nodes.map((n) => {
    const box = boxes.get(n.id);
    if (!box) return n; // VMs sit at fixed places inside their host
    const sized = n.type === "group" ? { width: box.width, height: box.height, style: { width: box.width, height: box.height } } : {};
    const position = saved[n.id] || { x: box.x, y: box.y };
    return { ...n, ...sized, position };
  });
}
