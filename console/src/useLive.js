// Everything the console draws, kept current by the controller's event
// stream: any event refreshes the runtime status (debounced, so a burst of
// a hundred events costs one request); inventory events refresh the
// inventory too. The stream resumes from the last event id it saw.

import { useCallback, useEffect, useRef, useState } from "react";

const KINDS = ["personas", "networks", "groups", "hosts", "switches"];
const REFRESH_MS = 150;
const KEEP_EVENTS = 1000;

export function useLive(api) {
  const [data, setData] = useState(null);
  const [events, setEvents] = useState([]);
  const [error, setError] = useState(null);
  const [connected, setConnected] = useState(false);
  const timer = useRef(null);
  const dirty = useRef({ inventory: false });

  const refresh = useCallback(async (inventory = true) => {
    try {
      const [status, fabric, controllers, templates, ...lists] = await Promise.all([
        api.get("/status"), api.get("/fabric"), api.get("/controllers"), inventory ? api.get("/templates") : null,
        ...(inventory ? KINDS.map((k) => api.all(k)) : [])]);
      setData((old) => ({
        ...(old || {}),
        status,
        fabric,
        controllers,
        ...(inventory ? { templates, ...Object.fromEntries(KINDS.map((k, i) => [k, lists[i]])) } : {}),
      }));
      setError(null);
    } catch (e) {
      setError(e.message);
    }
  }, [api]);

  const schedule = useCallback((inventory) => {
    dirty.current.inventory ||= inventory;
    if (timer.current) return;
    timer.current = setTimeout(() => {
      const inv = dirty.current.inventory;
      dirty.current.inventory = false;
      timer.current = null;
      refresh(inv);
    }, REFRESH_MS);
  }, [refresh]);

  useEffect(() => {
    let source = null;
    let lastId = 0;
    let closed = false;
    (async () => {
      const recent = await api.get("/events/log?limit=200&newest_first=true").catch(() => []);
      if (closed) return;
      setEvents(recent);
      lastId = recent.length ? recent[0].id : 0;
      await refresh(true);
      const open = () => {
        source = new EventSource(api.eventsUrl(lastId));
        source.onopen = () => setConnected(true);
        source.onerror = () => setConnected(false); // EventSource reconnects by itself, resuming from Last-Event-ID
        source.onmessage = (msg) => {
          const ev = JSON.parse(msg.data);
          lastId = ev.id;
          setEvents((old) => [ev, ...old].slice(0, KEEP_EVENTS));
          if (ev.kind === "transition" && ev.persona && ev.data) setData((old) => withTransition(old, ev));
          schedule(ev.kind === "inventory");
        };
      };
      open();
    })();
    return () => {
      closed = true;
      if (source) source.close();
      clearTimeout(timer.current);
      timer.current = null;
    };
  }, [api, refresh, schedule]);

  return { data, events, error, connected, refresh };
}

// A transition shows at once, before the next status read, and joins the
// persona's trail: the states it went through lately, so a suspect that
// lasted 100 ms is still there for the operator to see.
export function withTransition(data, ev) {
  if (!data || !data.status) return data;
  const trails = { ...(data.trails || {}) };
  const at = Date.parse(ev.at);
  trails[ev.persona] = [...(trails[ev.persona] || []).filter((t) => at - t.at < TRAIL_MS), { to: ev.data.to, at }].slice(-8);
  // an event older than the status already shown (the stream can lag a
  // status read) joins the trail but does not turn the clock back
  const personas = data.status.personas.map((p) => (p.name === ev.persona && at >= Date.parse(p.since)
    ? { ...p, state: ev.data.to, since: ev.at } : p));
  return { ...data, trails, status: { ...data.status, personas } };
}

export const TRAIL_MS = 120_000;
