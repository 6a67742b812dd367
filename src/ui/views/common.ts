// What the pages share: the live store and the API as context, hooks that re-render on a change
// or on a clock tick, and the small pieces every table uses (state badges, times, ages).

import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { html } from 'htm/preact';
import { duration, time } from '../../cli/output.js';
import type { Api } from '../api.js';
import type { Live } from '../live.js';

export { html };

export interface Session {
  api: Api;
  live: Live;
  signOut: () => void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

/** Re-renders the caller whenever the live store changes. */
export function useLive(): Live {
  const { live } = useSession();
  const [, setVersion] = useState(0);
  useEffect(() => live.subscribe(() => setVersion((v) => v + 1)), [live]);
  return live;
}

/** The time now, ticking every `ms`: ages shown count up between events (a clock, not a poll). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function StateBadge({ state }: { state: string }) {
  return html`<span class=${`badge state-${state.toLowerCase()}`} data-state=${state}>${state}</span>`;
}

export function at(ms: number): string {
  return time(ms);
}

export function ago(ms: number, now: number): string {
  return ms ? `${duration(Math.max(0, now - ms))} ago` : 'never';
}

/** From the first start to the end (or now, while it runs). */
export function took(startMs: number, endMs: number, now: number): string {
  if (!startMs) return '-';
  return duration(Math.max(0, (endMs || now) - startMs));
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  return html`<p class="error" role="alert">${message}</p>`;
}

/** `#/executions?job=x` → { path: '/executions', query: {job: 'x'} } */
export function parseHash(hash: string): { path: string; query: URLSearchParams } {
  const h = hash.replace(/^#/, '') || '/fleet';
  const q = h.indexOf('?');
  return q < 0 ? { path: h, query: new URLSearchParams() } : { path: h.slice(0, q), query: new URLSearchParams(h.slice(q + 1)) };
}

export function hrefOf(path: string, query: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}
