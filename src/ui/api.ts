// The dashboard's calls to the HTTP API: the token in `Authorization: Bearer` on every one
// (never in a cookie or a URL), errors as the API's `{"error": {kind, message, field,
// problems}}`, and the JSON shapes the pages read.

import type { JobDefinition } from '../domain/job.js';
import type { Problem } from './form.js';

export interface TaskJson {
  executorId: string;
  executorName: string;
  state: string;
  exitCode?: number;
  attempts: number;
  startedAtMs: number;
  finishedAtMs: number;
  reason: string;
  key: string;
}

/** An execution as GET /v1/executions/{id} and the `execution` event show it (what the pages read of it). */
export interface ExecutionJson {
  id: string;
  job: string;
  jobVersion: number;
  args: Record<string, string>;
  target: string;
  requester: string;
  state: string;
  reason: string;
  createdAtMs: number;
  updatedAtMs: number;
  finishedAtMs: number;
  tasks: TaskJson[];
}

export interface ExecutorJson {
  id: string;
  name: string;
  groups: string[];
  runners: string[];
  version: string;
  state: string;
  registeredAtMs: number;
  lastSeenAtMs: number;
  runningTasks: number;
  pingIntervalSeconds: number;
}

export interface StoredJobJson {
  definition: JobDefinition;
  version: number;
  updated_by: string;
  updated_at_ms: number;
}

export interface ExecutionPage {
  executions: ExecutionJson[];
  next_cursor: string;
  pruned_before_ms: number;
  retention: string;
}

export interface StateCountsJson {
  counts: Record<string, number>;
  at_least: string[];
}

export const EXECUTION_STATES = ['QUEUED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'] as const;
const ENDED = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

export function hasEnded(state: string): boolean {
  return ENDED.has(state);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
    readonly field?: string,
    readonly problems: Problem[] = [],
    /** Seconds, from Retry-After. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The error an answer that is not 2xx carries. */
export async function errorOf(res: Response): Promise<ApiError> {
  let body: { error?: { kind?: string; message?: string; field?: string; problems?: Problem[] } } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON: a proxy's page, say
  }
  const e = body.error ?? {};
  const retry = Number(res.headers.get('retry-after'));
  return new ApiError(res.status, e.kind ?? 'internal', e.message ?? `${res.status} ${res.statusText}`, e.field, e.problems ?? [], retry > 0 ? retry : undefined);
}

export class Api {
  /** Called when the token is refused (401): the page asks for another. */
  onUnauthenticated: (message: string) => void = () => undefined;

  constructor(readonly token: string) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, ...extra };
  }

  /** A call answered with JSON; throws ApiError on a refusal. */
  async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.open(method, path, { body, signal });
    return (await res.json()) as T;
  }

  /** A call whose answer is read by the caller (a stream); throws ApiError on a refusal. */
  async open(method: string, path: string, o: { body?: unknown; signal?: AbortSignal; headers?: Record<string, string> } = {}): Promise<Response> {
    const res = await fetch(path, {
      method,
      headers: this.headers({ ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers }),
      body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
      signal: o.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
    if (res.ok) return res;
    const err = await errorOf(res);
    if (res.status === 401) this.onUnauthenticated(err.message);
    throw err;
  }
}

/** Reads a response body as text pieces, as they arrive. */
export async function* textPieces(res: Response): AsyncIterable<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      yield decoder.decode(r.value, { stream: true });
    }
    const rest = decoder.decode();
    if (rest) yield rest;
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
