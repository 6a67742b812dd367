// What the dashboard knows live, from GET /v1/events: every executor, every execution not ended
// (and those seen changing since), the executors' heartbeats. One stream for the whole page,
// read with fetch() (EventSource cannot send the token) and resumed with Last-Event-ID after a
// cut, so no change is missed. Pages subscribe; nothing here polls.

import { Api, ApiError, hasEnded, textPieces, type ExecutionJson, type ExecutorJson } from './api.js';
import { SseParser } from './sse.js';

export type Connection = 'connecting' | 'live' | 'reconnecting';

/** Ended executions kept after their last change (the rest are read with GET when needed). */
const KEEP_ENDED = 200;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

interface Heartbeat {
  id: string;
  lastSeenAtMs: number;
  runningTasks: number;
}

export class Live {
  readonly executors = new Map<string, ExecutorJson>();
  readonly executions = new Map<string, ExecutionJson>();
  connection: Connection = 'connecting';
  /** Why the stream is down, while it is. */
  problem = '';
  /** Counts resets: a page that read something itself reads it again after one. */
  resets = 0;
  private readonly listeners = new Set<() => void>();
  private readonly executionListeners = new Set<(x: ExecutionJson) => void>();
  private readonly abort = new AbortController();
  private lastEventId = '';

  constructor(private readonly api: Api) {}

  /** Calls `fn` after every change; returns the unsubscribe. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Calls `fn` with each execution as an event shows it. */
  onExecution(fn: (x: ExecutionJson) => void): () => void {
    this.executionListeners.add(fn);
    return () => this.executionListeners.delete(fn);
  }

  /** Tasks RUNNING on each executor (by id), as the state of record says. */
  runningByExecutor(): Map<string, number> {
    const out = new Map<string, number>();
    for (const x of this.executions.values()) {
      if (hasEnded(x.state)) continue;
      for (const t of x.tasks) if (t.state === 'RUNNING' && t.executorId) out.set(t.executorId, (out.get(t.executorId) ?? 0) + 1);
    }
    return out;
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.abort.abort();
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  private async run(): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!this.abort.signal.aborted) {
      try {
        const res = await this.api.open('GET', '/v1/events', {
          signal: this.abort.signal,
          headers: { accept: 'text/event-stream', ...(this.lastEventId ? { 'last-event-id': this.lastEventId } : {}) },
        });
        this.connection = 'live';
        this.problem = '';
        delay = RETRY_MIN_MS;
        this.changed();
        const parser = new SseParser(this.lastEventId);
        for await (const piece of textPieces(res)) {
          for (const e of parser.push(piece)) this.apply(e.event, e.data);
          // Only once the events before it were applied.
          this.lastEventId = parser.lastEventId;
        }
        this.problem = 'the event stream ended';
      } catch (err) {
        if (this.abort.signal.aborted) return;
        if (err instanceof ApiError && err.status === 401) return; // the page asks for a token again
        this.problem = err instanceof Error ? err.message : String(err);
        if (err instanceof ApiError && err.retryAfter) delay = Math.max(delay, err.retryAfter * 1000);
      }
      if (this.abort.signal.aborted) return;
      this.connection = 'reconnecting';
      this.changed();
      await sleep(delay, this.abort.signal);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  private apply(event: string, data: string): void {
    const body = JSON.parse(data) as Record<string, unknown>;
    switch (event) {
      case 'reset': {
        const r = body as unknown as { executions: ExecutionJson[]; executors: ExecutorJson[] };
        this.executors.clear();
        for (const e of r.executors) this.executors.set(e.id, e);
        // The reset lists every execution not ended: others we hold ended meanwhile, or were deleted.
        for (const [id, x] of this.executions) if (!hasEnded(x.state)) this.executions.delete(id);
        for (const x of r.executions) this.executions.set(x.id, x);
        this.resets++;
        break;
      }
      case 'execution': {
        const x = body as unknown as ExecutionJson;
        this.executions.set(x.id, x);
        this.trimEnded();
        for (const fn of this.executionListeners) fn(x);
        break;
      }
      case 'execution_deleted':
        this.executions.delete(String(body.id));
        break;
      case 'executor': {
        const e = body as unknown as ExecutorJson;
        const had = this.executors.get(e.id);
        // A heartbeat taken after the change is newer than what the change carries.
        this.executors.set(e.id, had && had.lastSeenAtMs > e.lastSeenAtMs ? { ...e, lastSeenAtMs: had.lastSeenAtMs } : e);
        break;
      }
      case 'executor_removed':
        this.executors.delete(String(body.id));
        break;
      case 'heartbeats':
        for (const h of (body as unknown as { executors: Heartbeat[] }).executors) {
          const e = this.executors.get(h.id);
          if (e) this.executors.set(h.id, { ...e, lastSeenAtMs: Math.max(e.lastSeenAtMs, h.lastSeenAtMs), runningTasks: h.runningTasks });
        }
        break;
      case 'error':
        this.problem = String((body as { error?: { message?: string } }).error?.message ?? 'the event stream failed');
        break;
      default:
        return;
    }
    this.changed();
  }

  private trimEnded(): void {
    const ended = [...this.executions.values()].filter((x) => hasEnded(x.state));
    if (ended.length <= KEEP_ENDED) return;
    ended.sort((a, b) => a.updatedAtMs - b.updatedAtMs);
    for (const x of ended.slice(0, ended.length - KEEP_ENDED)) this.executions.delete(x.id);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}
