// The signed-in session: the bearer token, its expiry and the user. Kept in sessionStorage
// (per tab, gone when the tab closes), never in a URL or a cookie.

import type { LoginResponse, User } from "./api/types";

const KEY = "agentic-ide.session";

export interface Session {
  token: string;
  expiresAt: number; // epoch milliseconds
  user: User;
}

type Listener = (session: Session | null, reason?: string) => void;

let current: Session | null = load();
const listeners = new Set<Listener>();
let expiryTimer: ReturnType<typeof setTimeout> | undefined;

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (!s.token || !s.user || !(s.expiresAt > Date.now())) return null;
    return s;
  } catch {
    return null;
  }
}

function emit(reason?: string) {
  for (const l of listeners) l(current, reason);
}

function armExpiry() {
  clearTimeout(expiryTimer);
  if (!current) return;
  // setTimeout's limit is 2^31-1 ms (~24.8 days); tokens live hours.
  const ms = Math.min(current.expiresAt - Date.now(), 0x7fffffff);
  expiryTimer = setTimeout(() => expire("Your session expired. Sign in again to continue."), Math.max(ms, 0));
}

/** The current session, or null when signed out. */
export function getSession(): Session | null {
  return current;
}

/** Stores a successful login. */
export function signIn(login: LoginResponse) {
  const expiresAt = Date.parse(login.expires_at);
  current = { token: login.token, user: login.user, expiresAt: Number.isFinite(expiresAt) ? expiresAt : Date.now() + 3600e3 };
  sessionStorage.setItem(KEY, JSON.stringify(current));
  armExpiry();
  emit();
}

/** Signs out on the user's request. */
export function signOut() {
  current = null;
  sessionStorage.removeItem(KEY);
  clearTimeout(expiryTimer);
  emit("You signed out.");
}

/** Ends the session because the server refused the token (401) or it timed out. */
export function expire(reason: string) {
  if (!current) return;
  current = null;
  sessionStorage.removeItem(KEY);
  clearTimeout(expiryTimer);
  emit(reason);
}

/** Calls `l` on every sign-in and sign-out; returns the unsubscribe function. */
export function onSessionChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

armExpiry();
