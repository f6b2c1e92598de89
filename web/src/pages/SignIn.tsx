// Sign in with e-mail and password (POST /api/auth/login). Shows why the last session ended.

import { useState } from "preact/hooks";
import { api } from "../api/client";
import { signIn } from "../session";
import { ErrorBanner, Notice, useAction, useTitle } from "../components/ui";

export function SignInPage({ reason }: { reason?: string }) {
  useTitle("Sign in");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const login = useAction(async () => signIn(await api.login(email.trim(), password)));
  const submit = (ev: Event) => {
    ev.preventDefault();
    login.run();
  };

  return (
    <main id="main" class="signin">
      <div class="signin-card">
        <div class="brand brand-large">
          <span class="brand-mark" aria-hidden="true">A</span>
          <span>Agentic IDE</span>
        </div>
        <h1>Sign in</h1>
        <p class="muted">Design multi-agent workflows and refine them with AI.</p>
        {reason && <Notice kind="info">{reason}</Notice>}
        <ErrorBanner error={login.error} />
        <form onSubmit={submit} class="form">
          <label class="field">
            <span>E-mail</span>
            <input
              type="email"
              name="email"
              autoComplete="username"
              required
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </label>
          <label class="field">
            <span>Password</span>
            <input
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <button type="submit" class="btn btn-primary btn-block" disabled={login.busy}>
            {login.busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
      </div>
    </main>
  );
}
