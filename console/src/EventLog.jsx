// The event log, newest first, filtered by persona, host and severity.

import { useMemo, useState } from "react";

const SEVERITIES = ["debug", "info", "warning", "error", "critical"];

export default function EventLog({ events }) {
  const [persona, setPersona] = useState("");
  const [host, setHost] = useState("");
  const [severity, setSeverity] = useState("info");
  const shown = useMemo(() => {
    const floor = SEVERITIES.indexOf(severity);
    return events.filter((e) => SEVERITIES.indexOf(e.severity) >= floor
      && (!persona || (e.persona || "").includes(persona))
      && (!host || (e.host || "").includes(host))).slice(0, 300);
  }, [events, persona, host, severity]);
  return (
    <div className="eventlog">
      <div className="filters">
        <b>Events</b>
        <input placeholder="persona" aria-label="filter by persona" value={persona} onChange={(e) => setPersona(e.target.value)} />
        <input placeholder="host" aria-label="filter by host" value={host} onChange={(e) => setHost(e.target.value)} />
        <select aria-label="severity" value={severity} onChange={(e) => setSeverity(e.target.value)}>
          {SEVERITIES.map((s) => <option key={s} value={s}>{s} and above</option>)}
        </select>
      </div>
      <table>
        <tbody>
          {shown.map((e) => (
            <tr key={e.id} className={`sev-${e.severity}`} data-event-kind={e.kind}>
              <td className="mono">{new Date(e.at).toLocaleTimeString()}</td>
              <td>{e.severity}</td>
              <td>{e.kind}</td>
              <td>{e.persona || ""}</td>
              <td>{e.host || ""}</td>
              <td>{e.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
