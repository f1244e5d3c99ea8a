// Sign-in with a voe token (`voe token create`, or the admin token the
// controller wrote to its data directory). The token stays in this tab.

import { useState } from "react";
import { makeApi } from "./api.js";

export default function SignIn({ onSignedIn }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  return (
    <form className="signin" onSubmit={async (e) => {
      e.preventDefault();
      const api = makeApi(token.trim());
      try {
        const who = await api.get("/whoami");
        sessionStorage.setItem("voe.token", token.trim());
        onSignedIn(api, who);
      } catch (err) {
        setError(err.message);
      }
    }}>
      <h1>voe console</h1>
      <p>Sign in with a token: <code>voe token create NAME --role operator</code>, or the admin token that
        <code> voe serve</code> printed.</p>
      <input type="password" name="token" placeholder="token" value={token} onChange={(e) => setToken(e.target.value)} autoFocus />
      <button type="submit" className="primary">Sign in</button>
      {error ? <div className="error" role="alert">{error}</div> : null}
    </form>
  );
}
