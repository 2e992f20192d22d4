// Sign in: paste an access token, or use a local account (email and password). A local
// sign-in opens a cookie session and mints a one-day token acting for you: websockets
// authenticate with a token in `connection_init`, never with the cookie.
import { useSignal } from "@preact/signals";
import { authProblem, loadViewer, setToken } from "../api.js";

async function post(path, body, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || data.error || data.message || `HTTP ${response.status}`);
  return data;
}

export function SignIn({ onSignedIn }) {
  const pasted = useSignal("");
  const email = useSignal("");
  const password = useSignal("");
  const error = useSignal(authProblem.value);
  const busy = useSignal(false);

  const finish = async (token) => {
    setToken(token);
    try {
      await loadViewer();
      onSignedIn();
    } catch (err) {
      setToken("");
      throw err;
    }
  };
  const withToken = async (event) => {
    event.preventDefault();
    busy.value = true;
    error.value = "";
    try {
      await finish(pasted.value.trim().replace(/^Bearer\s+/i, ""));
    } catch (err) {
      error.value = err.message;
    }
    busy.value = false;
  };
  const withAccount = async (event) => {
    event.preventDefault();
    busy.value = true;
    error.value = "";
    try {
      const session = await post("/api/v1/auth/login", { email: email.value, password: password.value });
      const minted = await post("/api/control-plane/auth/tokens", { name: "dashboard", expires_in_days: 1 }, { "X-CSRF-Token": session.csrfToken });
      await finish(minted.token);
      localStorage.setItem("agentplane.minted", minted.id); // revoked again at sign-out
    } catch (err) {
      error.value = err.message;
    }
    busy.value = false;
  };
  return (
    <div class="signin">
      <h1>agentplane</h1>
      <p class="muted">The operator dashboard. Sign in with an access token or a local account.</p>
      {error.value && <p class="error" role="alert">{error.value}</p>}
      <div class="columns">
        <form class="panel stack" onSubmit={withToken} aria-label="Sign in with a token">
          <h2>Access token</h2>
          <label>Token
            <input name="token" type="password" autoComplete="off" placeholder="agp_…" value={pasted.value} onInput={(e) => (pasted.value = e.currentTarget.value)} required />
          </label>
          <p class="muted small">Kept in this browser's local storage until you sign out.</p>
          <button type="submit" disabled={busy.value}>Sign in with token</button>
        </form>
        <form class="panel stack" onSubmit={withAccount} aria-label="Sign in with a local account">
          <h2>Local account</h2>
          <label>Email
            <input name="email" type="email" autoComplete="username" value={email.value} onInput={(e) => (email.value = e.currentTarget.value)} required />
          </label>
          <label>Password
            <input name="password" type="password" autoComplete="current-password" value={password.value} onInput={(e) => (password.value = e.currentTarget.value)} required />
          </label>
          <button type="submit" disabled={busy.value}>Sign in</button>
        </form>
      </div>
      <p class="muted small">First start? <code>make run</code> printed a platform-admin token. The API itself is at <a href="/graphql">/graphql</a>.</p>
    </div>
  );
}
