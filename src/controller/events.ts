// The feed of changes to executions and executors (the HTTP door's /v1/events). One etcd watch
// over the key range from executions/ to executors/ — one range, so changes arrive in revision
// order — handed out in batches, one per etcd revision, so that a client that saw revision R can
// resume with every change after R (a watch from R + 1). Where etcd can no longer replay from
// there (compacted), or the connection to it was lost, the feed starts again with a `reset`: the
// current state (every executor, every execution that has not ended), then the changes after it.
// A token with groups sees only the executions inside them. Transport-free.

import type { IKeyValue } from 'etcd3';
import type { Execution } from '../domain/execution.js';
import type { ExecutorRecord, ExecutorView } from '../domain/executor.js';
import { LimitExceededError } from '../errors.js';
import type { EtcdExecutionStore } from '../store/etcd-executions.js';
import { decodeExecution } from '../store/execution-codec.js';
import { watchKeys } from '../store/key-watch.js';
import type { Kv } from '../store/kv.js';
import { authorize, type Principal } from './auth.js';
import type { ExecutorRegistry } from './executors.js';
import type { ExecutorHeartbeat } from './heartbeats.js';
import { executionInScope, type NodeGroups } from './scope.js';
import type { StreamQuota } from './stream-quota.js';
import { executionView, type ExecutionView } from './views.js';

export type GridEvent =
  | { type: 'execution'; execution: ExecutionView }
  /** Deleted by retention. Not sent to tokens with groups (a deleted record no longer says its target). */
  | { type: 'execution_deleted'; id: string }
  | { type: 'executor'; executor: ExecutorView }
  | { type: 'executor_removed'; id: string }
  /** The current state; `start` when the feed begins afresh, `resumed` when it could not go on from where it was. */
  | { type: 'reset'; reason: 'start' | 'resumed'; executions: ExecutionView[]; executors: ExecutorView[] }
  /**
   * Heartbeats this controller took since the last such event (heartbeats are not in etcd, so
   * they have no revision and are not replayed on resuming).
   */
  | { type: 'heartbeats'; executors: ExecutorHeartbeat[] };

/** The changes of one etcd revision; heartbeats have none. */
export interface EventBatch {
  revision?: number;
  events: GridEvent[];
}

type Change = { put: IKeyValue } | { deleted: IKeyValue } | { snapshot: IKeyValue[]; revision: number; resumed: boolean };

/** Changes a reader may fall behind by before its feed is ended (it resumes from its last revision). */
const MAX_BEHIND = 10_000;
/** Execution records read at once for a reset. */
const READ_BATCH = 64;
/** How often heartbeats taken since the last look are handed out. */
const HEARTBEATS_EVERY_MS = 2_000;

export class EventService {
  constructor(
    private readonly d: {
      kv: Kv;
      store: Pick<EtcdExecutionStore, 'key'>;
      registry: Pick<ExecutorRegistry, 'view' | 'heartbeats'>;
      /** Each executor's groups by name, for tokens with groups. */
      nodeGroups: () => Promise<NodeGroups>;
      /** Open streams per token, shared with GetLogs and WatchExecution; absent = not counted. */
      streams?: StreamQuota;
      maxBehind?: number;
      heartbeatsEveryMs?: number;
    },
  ) {}

  /**
   * Batches of changes after revision `after` (or, without it, a reset and every change after
   * it), until `signal` fires. `onReady` is called once the watch is open.
   */
  stream(p: Principal, opts: { after?: number; onReady?: () => void }, signal: AbortSignal): AsyncIterable<EventBatch> {
    const run = () => this.feed(p, opts, signal);
    return this.d.streams?.hold(p, run) ?? run();
  }

  private async *feed(p: Principal, opts: { after?: number; onReady?: () => void }, signal: AbortSignal): AsyncIterable<EventBatch> {
    authorize(p, 'executions:read');
    authorize(p, 'executors:read');
    const { kv } = this.d;
    let after = opts.after;
    // A revision this etcd has not reached (from another cluster, or made up) cannot be resumed from.
    if (after !== undefined && after > (await kv.revision())) after = undefined;
    const executionsPrefix = this.d.store.key('');
    const executorsPrefix = kv.key('executors', '');
    const max = this.d.maxBehind ?? MAX_BEHIND;
    const queue: Change[] = [];
    let behind = false;
    let wake: (() => void) | undefined;
    const push = (c: Change) => {
      if (queue.length >= max) behind = true;
      else queue.push(c);
      wake?.();
    };
    const watch = watchKeys(kv, {
      key: executionsPrefix,
      end: executorsPrefix.slice(0, -1) + '0',
      after,
      read: () => this.currentState(),
      onPut: (put) => push({ put }),
      onDelete: (deleted) => push({ deleted }),
      onSnapshot: (snapshot, revision, resumed) => push({ snapshot, revision, resumed }),
    });
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    const heartbeats = new HeartbeatDelta(() => this.d.registry.heartbeats());
    let heartbeatsDue = false;
    const heartbeatTimer = setInterval(() => {
      heartbeatsDue = true;
      wake?.();
    }, this.d.heartbeatsEveryMs ?? HEARTBEATS_EVERY_MS);
    try {
      if (!(await watch.ready)) return;
      opts.onReady?.();
      while (!signal.aborted) {
        if (behind) {
          throw new LimitExceededError('', `this reader fell more than ${max} changes behind; reconnect with the last event id to resume`, { retryable: true });
        }
        if (queue.length === 0 && heartbeatsDue) {
          heartbeatsDue = false;
          const changed = heartbeats.next();
          if (changed.length) yield { events: [{ type: 'heartbeats', executors: changed }] };
          continue;
        }
        if (queue.length === 0) {
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
          continue;
        }
        const changes = queue.splice(0);
        const visible = await this.visibility(p);
        for (const batch of this.batches(changes, executionsPrefix, executorsPrefix, visible, p.groups.length > 0)) yield batch;
      }
    } finally {
      clearInterval(heartbeatTimer);
      signal.removeEventListener('abort', onAbort);
      await watch.close();
    }
  }

  /** Whether the principal may see an execution (by its recorded target). */
  private async visibility(p: Principal): Promise<(x: Execution) => boolean> {
    if (!p.groups.length) return () => true;
    const groups = await this.d.nodeGroups();
    return (x) => executionInScope(p, x.target, groups);
  }

  /** Changes grouped by revision (etcd hands a revision's changes over together), in order. */
  private *batches(changes: Change[], executionsPrefix: string, executorsPrefix: string, visible: (x: Execution) => boolean, scoped: boolean): Iterable<EventBatch> {
    let batch: EventBatch | undefined;
    for (const c of changes) {
      if ('snapshot' in c) {
        if (batch?.events.length) yield batch;
        batch = undefined;
        yield { revision: c.revision, events: [this.reset(c.snapshot, c.resumed, executionsPrefix, executorsPrefix, visible)] };
        continue;
      }
      const kv = 'put' in c ? c.put : c.deleted;
      const revision = Number(kv.mod_revision);
      if (batch && batch.revision !== revision) {
        if (batch.events.length) yield batch;
        batch = undefined;
      }
      batch ??= { revision, events: [] };
      const key = kv.key.toString();
      if (key.startsWith(executionsPrefix)) {
        const id = key.slice(executionsPrefix.length);
        if ('deleted' in c) {
          if (!scoped) batch.events.push({ type: 'execution_deleted', id });
          continue;
        }
        const x = decodeExecution(kv.value);
        if (visible(x)) batch.events.push({ type: 'execution', execution: executionView(x) });
      } else if (key.startsWith(executorsPrefix)) {
        const id = key.slice(executorsPrefix.length);
        if ('deleted' in c) batch.events.push({ type: 'executor_removed', id });
        else batch.events.push({ type: 'executor', executor: this.d.registry.view(JSON.parse(kv.value.toString()) as ExecutorRecord) });
      }
      // Other keys in the range (executor-names/, executors-removed/) are not events.
    }
    if (batch?.events.length) yield batch;
  }

  private reset(kvs: IKeyValue[], resumed: boolean, executionsPrefix: string, executorsPrefix: string, visible: (x: Execution) => boolean): GridEvent {
    const executions: ExecutionView[] = [];
    const executors: ExecutorView[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString();
      if (key.startsWith(executorsPrefix)) executors.push(this.d.registry.view(JSON.parse(kv.value.toString()) as ExecutorRecord));
      else if (key.startsWith(executionsPrefix)) {
        const x = decodeExecution(kv.value);
        if (visible(x)) executions.push(executionView(x));
      }
    }
    executors.sort((a, b) => a.name.localeCompare(b.name));
    return { type: 'reset', reason: resumed ? 'resumed' : 'start', executions, executors };
  }

  /**
   * The state a reset carries, read at one revision: every executor, and the record of every
   * execution not ended (those the executions-active index lists). Ended executions are not
   * replayed: a reader lists them (GET /v1/executions) if it wants them.
   */
  private async currentState(): Promise<{ kvs: IKeyValue[]; revision: number }> {
    const { kv } = this.d;
    const { kvs: executors, revision } = await kv.rangeAll(kv.key('executors', ''));
    const activePrefix = kv.key('executions-active', '');
    const { kvs: active } = await kv.rangeAll(activePrefix, 500, revision);
    const ids = active.map((a) => a.key.toString().slice(activePrefix.length));
    const records: IKeyValue[] = [];
    for (let i = 0; i < ids.length; i += READ_BATCH) {
      const read = await Promise.all(
        ids.slice(i, i + READ_BATCH).map((id) => kv.wrap(() => kv.client.kv.range({ key: Buffer.from(this.d.store.key(id)), revision }))),
      );
      for (const r of read) records.push(...r.kvs);
    }
    return { kvs: [...executors, ...records], revision };
  }
}

/** The heartbeats that are new since the last call: each executor's, when it was seen again. */
export class HeartbeatDelta {
  private readonly sent = new Map<string, number>();

  constructor(private readonly read: () => ExecutorHeartbeat[]) {}

  next(): ExecutorHeartbeat[] {
    const changed = this.read().filter((h) => this.sent.get(h.id) !== h.last_seen_at_ms);
    for (const h of changed) this.sent.set(h.id, h.last_seen_at_ms);
    return changed;
  }
}
