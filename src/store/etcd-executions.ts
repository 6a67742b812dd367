// Executions in etcd: executions/<id> holds the record; executions-active/<id> a small index
// entry for each execution not yet terminal, so the sweeper and the expiry handler scan only
// those. Both change in one transaction guarded by the record's mod revision (CAS).

import { isTerminalExecution, type Execution, type ExecutionState } from '../domain/execution.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { Kv, Versioned } from './kv.js';

/** What the sweeper needs to know about an active execution without reading it. */
export interface ActiveEntry {
  id: string;
  state: ExecutionState;
  created_at_ms: number;
  deadline_ms: number;
  /** Earliest --wait-offline deadline among pending tasks, 0 = none. */
  wait_until_ms: number;
  /** Executors with unfinished tasks (so an expiry finds its executions without a scan). */
  executors: string[];
  /** Earliest release time of a batched wave's task not started yet, 0 = none. */
  released_at_ms?: number;
}

/** etcd's default limit of operations in one transaction. */
const TXN_OPS = 128;
/** Executions per group-commit transaction: a compare and two writes each. */
const GROUP = 42;

export interface ListFilter {
  job?: string;
  state?: ExecutionState;
  limit: number;
}

export class EtcdExecutionStore {
  constructor(private readonly kv: Kv) {}

  key(id: string): string {
    return this.kv.key('executions', id);
  }
  activeKey(id: string): string {
    return this.kv.key('executions-active', id);
  }

  /**
   * Records a new execution. Creates that arrive while a transaction is in flight are written
   * together in the next one (group commit): no waiting when idle, far fewer writes under load.
   */
  create(x: Execution): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pendingCreates.push({ x, resolve, reject });
      this.kickCreates();
    });
  }

  private readonly pendingCreates: Array<{ x: Execution; resolve: () => void; reject: (err: unknown) => void }> = [];
  private creating?: Promise<void>;

  private kickCreates(): void {
    if (this.creating) return;
    this.creating = this.flushCreates().finally(() => {
      this.creating = undefined;
      if (this.pendingCreates.length) this.kickCreates();
    });
  }

  private async flushCreates(): Promise<void> {
    while (this.pendingCreates.length) {
      const chunk = this.pendingCreates.splice(0, GROUP);
      try {
        const res = await this.kv.client.kv.txn({
          compare: chunk.map(({ x }) => ({ key: Buffer.from(this.key(x.id)), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 })),
          success: chunk.flatMap(({ x }) => [
            { request_put: { key: Buffer.from(this.key(x.id)), value: Buffer.from(JSON.stringify(x)) } },
            { request_put: { key: Buffer.from(this.activeKey(x.id)), value: Buffer.from(JSON.stringify(activeEntry(x))) } },
          ]),
        });
        if (res.succeeded) for (const p of chunk) p.resolve();
        // One id was taken already (never for fresh ids): find which, one by one.
        else await Promise.all(chunk.map((p) => this.createOne(p.x).then(p.resolve, p.reject)));
      } catch (err) {
        for (const p of chunk) p.reject(err);
      }
    }
  }

  private async createOne(x: Execution): Promise<void> {
    const c = this.kv.client;
    const res = await c
      .if(this.key(x.id), 'Create', '==', 0)
      .then(c.put(this.key(x.id)).value(JSON.stringify(x)), c.put(this.activeKey(x.id)).value(JSON.stringify(activeEntry(x))))
      .commit();
    if (!res.succeeded) throw new ConflictError('execution', x.id, 'an execution with this id exists already');
  }

  async get(id: string): Promise<Versioned<Execution> | undefined> {
    return this.kv.get<Execution>(this.key(id));
  }

  async mustGet(id: string): Promise<Execution> {
    const x = await this.get(id);
    if (!x) throw new NotFoundError('execution', id, 'grid-cli executions list shows recent ones');
    return x.value;
  }

  /**
   * Read-modify-write by compare-and-swap, retried on conflict. `fn` mutates the copy it is
   * given and returns whether it changed anything; nothing is written when it did not.
   */
  async update(id: string, fn: (x: Execution) => boolean): Promise<{ execution: Execution; changed: boolean }> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const cur = await this.get(id);
      if (!cur) throw new NotFoundError('execution', id);
      const next = structuredClone(cur.value);
      if (!fn(next)) return { execution: cur.value, changed: false };
      if (await this.swap(next, cur.revision)) return { execution: next, changed: true };
    }
    throw new ConflictError('execution', id, 'gave up after 50 concurrent updates');
  }

  /** Writes `x` if the record is still at `revision`, keeping the active index in step. */
  async swap(x: Execution, revision: number): Promise<boolean> {
    const c = this.kv.client;
    const index = isTerminalExecution(x.state)
      ? c.delete().key(this.activeKey(x.id))
      : c.put(this.activeKey(x.id)).value(JSON.stringify(activeEntry(x)));
    const res = await c.if(this.key(x.id), 'Mod', '==', revision).then(c.put(this.key(x.id)).value(JSON.stringify(x)), index).commit();
    return res.succeeded;
  }

  /** Reads many executions in one round trip per 128 (etcd's limit of operations per txn). */
  async getMany(ids: string[]): Promise<Map<string, Versioned<Execution>>> {
    const out = new Map<string, Versioned<Execution>>();
    for (let i = 0; i < ids.length; i += TXN_OPS) {
      const chunk = ids.slice(i, i + TXN_OPS);
      const res = await this.kv.client.kv.txn({ success: chunk.map((id) => ({ request_range: { key: Buffer.from(this.key(id)) } })) });
      res.responses.forEach((r, j) => {
        const kv = r.response_range?.kvs[0];
        if (kv) out.set(chunk[j]!, { value: JSON.parse(kv.value.toString()) as Execution, revision: Number(kv.mod_revision) });
      });
    }
    return out;
  }

  /**
   * Group commit: applies `fn` to each execution and writes all the changes in as few
   * transactions as possible, each guarded by every record's mod revision. A transaction that
   * loses to a concurrent writer is redone execution by execution with update(). Executions
   * that do not exist are missing from the result.
   */
  async updateMany(ids: string[], fn: (x: Execution) => boolean): Promise<Map<string, { execution: Execution; changed: boolean }>> {
    const result = new Map<string, { execution: Execution; changed: boolean }>();
    const current = await this.getMany([...new Set(ids)]);
    const changes: Array<{ next: Execution; revision: number }> = [];
    for (const [id, cur] of current) {
      const next = structuredClone(cur.value);
      if (fn(next)) changes.push({ next, revision: cur.revision });
      else result.set(id, { execution: cur.value, changed: false });
    }
    const c = this.kv.client;
    for (let i = 0; i < changes.length; i += GROUP) {
      const chunk = changes.slice(i, i + GROUP);
      const res = await c.kv.txn({
        compare: chunk.map(({ next, revision }) => ({ key: Buffer.from(this.key(next.id)), target: 'Mod' as const, result: 'Equal' as const, mod_revision: revision })),
        success: chunk.flatMap(({ next }) => [
          { request_put: { key: Buffer.from(this.key(next.id)), value: Buffer.from(JSON.stringify(next)) } },
          isTerminalExecution(next.state)
            ? { request_delete_range: { key: Buffer.from(this.activeKey(next.id)) } }
            : { request_put: { key: Buffer.from(this.activeKey(next.id)), value: Buffer.from(JSON.stringify(activeEntry(next))) } },
        ]),
      });
      if (res.succeeded) {
        for (const { next } of chunk) result.set(next.id, { execution: next, changed: true });
      } else {
        for (const { next } of chunk) result.set(next.id, await this.update(next.id, fn));
      }
    }
    return result;
  }

  /** Newest first (ids are time-ordered), filtered, at most `limit`. */
  async list(f: ListFilter): Promise<Execution[]> {
    const out: Execution[] = [];
    const prefix = this.kv.key('executions', '');
    let end: string | undefined;
    const page = Math.max(f.limit, 100);
    for (;;) {
      const q = this.kv.client.getAll().prefix(prefix).sort('Key', 'Descend').limit(page);
      const res = await (end ? this.kv.client.getAll().inRange({ start: prefix, end }).sort('Key', 'Descend').limit(page) : q).exec();
      for (const kv of res.kvs) {
        const x = JSON.parse(kv.value.toString()) as Execution;
        if ((!f.job || x.job === f.job) && (!f.state || x.state === f.state)) out.push(x);
        if (out.length >= f.limit) return out;
      }
      if (res.kvs.length < page) return out;
      end = res.kvs[res.kvs.length - 1]!.key.toString();
    }
  }

  async active(): Promise<ActiveEntry[]> {
    const all = await this.kv.list<ActiveEntry>(this.kv.key('executions-active', ''));
    return all.map((e) => e.value);
  }
}

export function activeEntry(x: Execution): ActiveEntry {
  const waits = x.tasks.filter((t) => t.state === 'PENDING' && t.wait_until_ms).map((t) => t.wait_until_ms!);
  const executors = new Set<string>();
  for (const t of x.tasks) if (t.executor_id && (t.state === 'PENDING' || t.state === 'RUNNING')) executors.add(t.executor_id);
  const released = x.tasks.filter((t) => t.state === 'PENDING' && !t.held && t.attempts === 0 && t.released_at_ms).map((t) => t.released_at_ms!);
  return {
    id: x.id,
    state: x.state,
    released_at_ms: released.length ? Math.min(...released) : 0,
    created_at_ms: x.created_at_ms,
    deadline_ms: x.deadline_ms,
    wait_until_ms: waits.length ? Math.min(...waits) : 0,
    executors: [...executors],
  };
}
