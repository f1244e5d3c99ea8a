// The console: sign-in, then the live diagram (virtual or physical view),
// the palette, the side panel of what is selected, and the event log.

import { ReactFlowProvider } from "@xyflow/react";
import { useCallback, useEffect, useMemo, useState } from "react";
import { makeApi } from "./api.js";
import Diagram from "./Diagram.jsx";
import EventLog from "./EventLog.jsx";
import { cloneSpec, nextName, physicalGraph, STATE_COLOURS, virtualGraph } from "./graph.js";
import Palette from "./Palette.jsx";
import PersonaPanel from "./PersonaPanel.jsx";
import { GroupPanel, NetworkPanel } from "./Panels.jsx";
import SignIn from "./SignIn.jsx";
import { useLive } from "./useLive.js";

function tokenFromPage() {
  const m = window.location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("voe.token", decodeURIComponent(m[1]));
    history.replaceState(null, "", window.location.pathname);
  }
  return sessionStorage.getItem("voe.token");
}

export default function App() {
  const [api, setApi] = useState(() => {
    const t = tokenFromPage();
    return t ? makeApi(t) : null;
  });
  if (!api) return <SignIn onSignedIn={(a) => setApi(a)} />;
  return (
    <ReactFlowProvider>
      <Console api={api} onSignOut={() => { sessionStorage.removeItem("voe.token"); setApi(null); }} />
    </ReactFlowProvider>
  );
}

function Console({ api, onSignOut }) {
  const { data, events, error, connected, refresh } = useLive(api);
  const [view, setView] = useState("virtual");
  const [selected, setSelected] = useState(new Set());
  const [search, setSearch] = useState("");
  const [focus, setFocus] = useState(null);
  const [group, setGroup] = useState("");
  const [banner, setBanner] = useState(null);

  useEffect(() => {
    if (error && /401|unknown or revoked/.test(error)) onSignOut();
  }, [error, onSignOut]);
  useEffect(() => {
    if (data && !group && data.groups && data.groups.length) setGroup(data.groups[0].name);
  }, [data, group]);

  const graph = useMemo(() => {
    if (!data) return { nodes: [], edges: [] };
    return view === "virtual" ? virtualGraph(data, { match: search }) : physicalGraph(data, { match: search });
  }, [data, view, search]);

  const run = useCallback(async (fn) => {
    try {
      const out = await fn();
      setBanner(null);
      refresh(true);
      return out;
    } catch (e) {
      setBanner(e.message);
      throw e;
    }
  }, [refresh]);

  if (!data) return <div className="loading">{error ? `cannot reach the controller: ${error}` : "loading…"}</div>;

  const personaByName = Object.fromEntries(data.personas.map((p) => [p.name, p]));
  const statusByName = Object.fromEntries(data.status.personas.map((s) => [s.name, s]));
  const [one] = [...selected];
  const selectedPersona = one && one.startsWith("p:") ? personaByName[one.slice(2)] : one && one.startsWith("vm:") ? personaByName[one.slice(3)] : null;
  const selectedGroup = one && one.startsWith("g:") ? data.groups.find((g) => g.name === one.slice(2)) : null;
  const selectedNetwork = one && one.startsWith("n:") ? data.networks.find((n) => n.name === one.slice(2)) : null;
  const selectedPersonas = [...selected].filter((id) => id.startsWith("p:") || id.startsWith("vm:")).map((id) => id.replace(/^(p|vm):/, ""));

  const select = (node, add) => {
    if (!node) return setSelected(new Set());
    setSelected((old) => {
      const next = new Set(add ? old : []);
      if (add && old.has(node.id)) next.delete(node.id); else next.add(node.id);
      return next;
    });
    if (node.id.startsWith("g:")) setGroup(node.id.slice(2));
  };

  async function createPersona(spec, position) {
    const taken = new Set(data.personas.map((p) => p.name));
    let made;
    const source = spec.clone && personaByName[spec.clone];
    if (spec.template || (source && source.image.template)) {
      // a template's persona is copied by cloning the template again: its own image, not the original's
      const name = nextName(spec.stem || spec.clone, taken);
      const { image, boot, ...fields } = source ? cloneSpec(source, name) : { name, cpus: 1, memory: 1024, vnics: [] };
      made = (await run(() => api.post(`/templates/${encodeURIComponent(spec.template || image.template)}/clone`,
        { persona: fields }))).persona;
    } else {
      let body;
      if (spec.clone) {
        body = cloneSpec(personaByName[spec.clone], nextName(spec.clone, taken));
      } else {
        const name = nextName(spec.stem, taken);
        const image = Object.fromEntries(Object.entries(spec.image).map(([k, v]) => [k, typeof v === "string" ? v.replace("{name}", name) : v]));
        body = { name, boot: spec.boot, image, cpus: 1, memory: 1024, vnics: [] };
      }
      made = await run(() => api.post("/personas", body));
    }
    if (position) {
      const saved = JSON.parse(localStorage.getItem("voe.layout.virtual") || "{}");
      saved[`p:${made.name}`] = position;
      localStorage.setItem("voe.layout.virtual", JSON.stringify(saved));
    }
    setSelected(new Set([`p:${made.name}`]));
    setFocus(`p:${made.name}`);
  }

  // A cable from a persona to a vSwitch is a new vNIC; the controller
  // proposes its IP from the subnet (editable in the side panel).
  async function connect({ source, target }) {
    const p = personaByName[source.slice(2)];
    const network = target.slice(2);
    await run(() => api.patch(`/personas/${encodeURIComponent(p.name)}`,
      { vnics: [...p.vnics, { network, ...(p.vnics.length === 0 ? { boot: true } : {}) }] }));
    setSelected(new Set([source]));
  }

  async function deleteCables(edges) {
    const byPersona = {};
    for (const e of edges) if (e.data && e.data.persona) (byPersona[e.data.persona] ||= new Set()).add(e.data.index);
    for (const [name, gone] of Object.entries(byPersona)) {
      const p = personaByName[name];
      await run(() => api.patch(`/personas/${encodeURIComponent(name)}`, { vnics: p.vnics.filter((_, i) => !gone.has(i)) }));
    }
  }

  const lifecycle = (path, body) => run(() => api.post(path, body ?? {}));
  const counts = {};
  for (const s of data.status.personas) counts[s.state] = (counts[s.state] || 0) + 1;

  return (
    <div className="app">
      <header>
        <b className="brand">voe</b>
        <div className="tabs">
          <button className={view === "virtual" ? "on" : ""} onClick={() => setView("virtual")}>Virtual</button>
          <button className={view === "physical" ? "on" : ""} onClick={() => setView("physical")}>Physical</button>
        </div>
        <input className="search" placeholder="search…" aria-label="search" value={search}
               onChange={(e) => setSearch(e.target.value)}
               onKeyDown={(e) => {
                 if (e.key !== "Enter") return;
                 const hit = graph.nodes.find((n) => n.id.split(":")[1] && n.id.split(":")[1].includes(search));
                 if (hit) { setFocus(null); setTimeout(() => setFocus(hit.id)); setSelected(new Set([hit.id])); }
               }} />
        <span className="group-ops">
          group
          <select aria-label="group" value={group} onChange={(e) => setGroup(e.target.value)}>
            {data.groups.map((g) => <option key={g.name} value={g.name}>{g.name}</option>)}
          </select>
          <button className="primary" disabled={!group} onClick={() => lifecycle(`/groups/${group}/start`, { partial: false })}>Start group</button>
          <button disabled={!group} onClick={() => lifecycle(`/groups/${group}/stop`)}>Stop group</button>
        </span>
        {selectedPersonas.length > 1 ? (
          <span className="group-ops">
            {selectedPersonas.length} selected
            <button onClick={() => Promise.all(selectedPersonas.map((n) => lifecycle(`/personas/${n}/start`, {})))}>Start</button>
            <button onClick={() => Promise.all(selectedPersonas.map((n) => lifecycle(`/personas/${n}/stop`)))}>Stop</button>
          </span>
        ) : null}
        <span className="legend">
          {Object.entries(counts).map(([s, n]) => (
            <span key={s} className="badge" style={{ background: STATE_COLOURS[s] }} data-count={s}>{s} {n}</span>
          ))}
        </span>
        <Controllers list={data.controllers || []} />
        <span className={`live ${connected ? "on" : ""}`} title="live event stream">{connected ? "● live" : "○ reconnecting"}</span>
        <button onClick={onSignOut}>Sign out</button>
      </header>
      <div className="top-banner">{banner ? <div className="error banner top" role="alert" onClick={() => setBanner(null)}>{banner}</div> : null}</div>
      <main>
        <Palette personas={data.personas} selectedPersona={selectedPersona} templates={data.templates}
                 onCreate={(spec) => createPersona(spec)}
                 onAddNetwork={(net) => run(() => api.post("/networks", net))} />
        <section className="canvas" data-view={view}>
          <Diagram view={view} graph={graph} focus={focus} selected={selected} onSelect={select}
                   onConnect={connect} onEdgesDelete={deleteCables}
                   onDropPersona={(spec, pos) => createPersona(spec, pos)} />
        </section>
        <aside>
          {selectedPersona ? (
            <PersonaPanel key={selectedPersona.name} api={api} persona={selectedPersona} status={statusByName[selectedPersona.name]}
                          networks={data.networks}
                          onAction={lifecycle} onDeleted={() => { setSelected(new Set()); refresh(true); }} />
          ) : selectedGroup ? (
            <GroupPanel api={api} group={selectedGroup} personas={data.personas} status={statusByName} onAction={lifecycle} run={run} />
          ) : selectedNetwork ? (
            <NetworkPanel network={selectedNetwork} personas={data.personas} />
          ) : (
            <div className="panel muted">
              <h2>Nothing selected</h2>
              <p>Click a persona, a group frame or a vSwitch. Drag from a persona's right edge to a vSwitch to cable it;
                select a cable and press Delete to remove it. Pick a group above and press Start group.</p>
            </div>
          )}
        </aside>
      </main>
      <footer><EventLog events={events} /></footer>
    </div>
  );
}

/** Which controller leads, in which term; every controller in the tooltip. */
function Controllers({ list }) {
  const leader = list.find((c) => c.leader);
  const all = list.map((c) => `${c.name} ${c.url}${c.leader ? ` leads, term ${c.term}` : ""}, renewed ${c.renewed_at}`);
  return (
    <span className="controllers" title={all.join("\n")} data-leader={leader ? leader.name : ""}>
      {leader ? `leader ${leader.name} · term ${leader.term}` : "no leader"}
      {list.length > 1 ? ` · ${list.length} controllers` : ""}
    </span>
  );
}
