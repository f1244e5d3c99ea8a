import { describe, expect, it } from "vitest";
import { cloneSpec, nextName, physicalGraph, portText, virtualGraph } from "./graph.js";
import { layout } from "./layout.js";

const personas = [
  { name: "web-1", image: { nfs_root: "10.0.3.5:/export/personas/web-1" }, vnics: [{ network: "front", ip: "10.0.1.11", mac: "02:56:4f:00:00:01" }], san: { initiator_iqn: "iqn.x:web-1" } },
  { name: "db", image: {}, vnics: [{ network: "back", ip: "10.0.2.5" }, { network: "front" }] },
  { name: "loose", image: {}, vnics: [] },
];
const networks = [{ name: "front", vlan: 100 }, { name: "back", vlan: 200 }];
const groups = [{ name: "app", members: ["web-1", "db"], depends: { "web-1": ["db"] } }];
const status = { personas: [{ name: "web-1", state: "running", machine: { kind: "vm", host: "kvm1", vm: "web-1-g1" } }] };

describe("virtual view", () => {
  it("cables every vNIC to its network and frames group members", () => {
    const { nodes, edges } = virtualGraph({ personas, networks, groups, status });
    const cables = edges.filter((e) => e.type === "cable").map((e) => [e.source, e.target, e.label]);
    expect(cables).toEqual([["p:web-1", "n:front", "10.0.1.11"], ["p:db", "n:back", "10.0.2.5"], ["p:db", "n:front", ""]]);
    expect(nodes.find((n) => n.id === "p:web-1").parentId).toBe("g:app");
    expect(nodes.find((n) => n.id === "p:loose").parentId).toBeUndefined();
    expect(edges.find((e) => e.type === "depends")).toMatchObject({ source: "p:web-1", target: "p:db" });
  });

  it("lays 200 personas on 20 networks out without overlap", async () => {
    const many = Array.from({ length: 200 }, (_, i) => ({ name: `p-${i}`, image: {}, vnics: [{ network: `n-${i % 20}` }] }));
    const nets = Array.from({ length: 20 }, (_, i) => ({ name: `n-${i}`, vlan: 100 + i }));
    const gs = Array.from({ length: 10 }, (_, g) => ({ name: `g-${g}`, members: many.slice(g * 20, g * 20 + 20).map((p) => p.name), depends: {} }));
    const placed = await layout(virtualGraph({ personas: many, networks: nets, groups: gs, status: {} }));
    const tops = placed.filter((n) => !n.parentId);
    for (let i = 0; i < tops.length; i += 1) {
      for (let j = i + 1; j < tops.length; j += 1) {
        const a = tops[i], b = tops[j];
        const apart = a.position.x + a.width <= b.position.x || b.position.x + b.width <= a.position.x ||
          a.position.y + a.height <= b.position.y || b.position.y + b.height <= a.position.y;
        expect(apart, `${a.id} overlaps ${b.id}`).toBe(true);
      }
    }
  });
});

describe("physical view", () => {
  it("puts VMs inside their hypervisor host and labels ports with their VLANs", () => {
    const hosts = [{ name: "kvm1", hypervisor: { driver: "lab" } }, { name: "dl360" }];
    const fabric = { cables: [{ host: "kvm1", nic: "eth0", switch: "sw1", port: "1", planned: { mode: "trunk", native_vlan: 300, tagged: [100, 200], admin_up: true }, confirmed: { mode: "trunk", native_vlan: 300, tagged: [100, 200], admin_up: true } }], fenced: {} };
    const { nodes, edges } = physicalGraph({ hosts, switches: [{ name: "sw1" }], personas, status, fabric });
    expect(nodes.find((n) => n.id === "vm:web-1").parentId).toBe("h:kvm1");
    expect(portText(fabric.cables[0])).toBe("eth0 ↔ sw1:1 trunk 100,200 native 300");
    expect(edges[0]).toMatchObject({ source: "h:kvm1", target: "s:sw1" });
  });

  it("marks a port whose switch has not confirmed the plan", () => {
    const c = { nic: "eth1", switch: "sw2", port: "3", planned: { mode: "trunk", native_vlan: null, tagged: [], admin_up: false }, confirmed: null };
    expect(portText(c)).toBe("eth1 ↔ sw2:3 trunk none (shut) (pending)");
  });
});

describe("cloning", () => {
  it("gives the copy a free name and no identity of the original", () => {
    const name = nextName("web-1", new Set(["web-1", "web-2"]));
    expect(name).toBe("web-3");
    const copy = cloneSpec(personas[0], name);
    expect(copy.vnics).toEqual([{ network: "front", dedicated: undefined, boot: undefined }]);
    expect(copy.image.nfs_root).toBe("10.0.3.5:/export/personas/web-3");
    expect(copy.san).toEqual({});
  });
});

describe("live status", () => {
  it("applies a transition at once but never lets a late one turn the clock back", async () => {
    const { withTransition } = await import("./useLive.js");
    const data = { status: { personas: [{ name: "web-1", state: "running", since: "2026-11-24T07:00:02Z" }] } };
    const late = withTransition(data, { persona: "web-1", at: "2026-11-24T07:00:01Z", data: { to: "booting" } });
    expect(late.status.personas[0].state).toBe("running");
    expect(late.trails["web-1"].map((t) => t.to)).toEqual(["booting"]);
    const fresh = withTransition(late, { persona: "web-1", at: "2026-11-24T07:00:03Z", data: { to: "suspect" } });
    expect(fresh.status.personas[0].state).toBe("suspect");
  });
});
