// Executions in etcd: executions/<id> holds the record; executions-active/<id> a small index
// entry for each execution not yet terminal, so the sweeper and the expiry handler scan only
// those. Both change in one transaction guarded by the record's mod revision (CAS). A record
// too large to write (limits.record_bytes, or etcd's own request limit) never holds up the
// others written with it: that execution fails alone, with the reason.

import type { ICompare, IRequestOp } from 'etcd3';
import { isTerminalExecution, type Execution, type ExecutionState } from '../domain/execution.js';
import { failExecution } from '../domain/execution-rules.js';
import { LIMIT_DEFAULTS, recordOverLimit, recordRefusedByEtcd } from '../domain/limits.js';
import { ConflictError, LimitExceededError, NotFoundError } from '../errors.js';
import { Batcher } from '../util/batcher.js';
import { isTooLarge, type Kv, type Versioned } from './kv.js';

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
  /** Earliest release time of a task sent and not started yet, 0 = none. */
  released_at_ms?: number;
  /** Who sent those tasks (Execution.dispatcher). */
  dispatcher?: string;
}

/** etcd's default limit of operations in one transaction. */
const TXN_OPS = 128;
/** Executions per group-commit transaction: a compare and two writes each. */
const GROUP = 42;
/** Records kept from this store's own writes (see `recent`). */
const RECENT_MAX = 10_000;

export interface ListFilter {
  job?: string;
  state?: ExecutionState;
  limit: number;
}

export interface ExecutionStoreOptions {
  /** limits.record_bytes: the largest write of one execution (record and index entry). */
  recordBytes?: number;
  now?: () => number;
}

/** What an update did to one execution. */
export interface UpdateResult {
  /** The execution as stored now. */
  execution: Execution;
  changed: boolean;
  /**
   * Set when the change could not be written because the record would be too large: the
   * execution was failed instead with this reason (or, if it had ended already, left as it was).
   */
  refused?: string;
}

/** One execution's part of a transaction: its compare, its writes, and their size. */
interface Write {
  x: Execution;
  compare: ICompare;
  ops: IRequestOp[];
  /** Bytes of its keys and values, what counts against record_bytes. */
  bytes: number;
}

interface Committed<W extends Write> {
  done: W[];
  /** Lost the compare to another writer (or, for a create, the id exists). */
  lost: W[];
  /** etcd refused the write for its size, even alone. */
  tooLarge: W[];
}

export class EtcdExecutionStore {
  private readonly recordBytes: number;
  private readonly now: () => number;

  constructor(
    private readonly kv: Kv,
    o: ExecutionStoreOptions = {},
  ) {
    this.recordBytes = o.recordBytes ?? LIMIT_DEFAULTS.record_bytes;
    this.now = o.now ?? Date.now;
  }

  key(id: string): string {
    return this.kv.key('executions', id);
  }
  activeKey(id: string): string {
    return this.kv.key('executions-active', id);
  }

  /**
   * Records a new execution. Creates that arrive while a transaction is in flight are written
   * together in the next one (group commit): no waiting when idle, far fewer writes under load.
   * A record too large to write is refused (LimitExceededError) and the others are written.
   */
  create(x: Execution): Promise<void> {
    return this.creates.add(x);
  }

  private readonly creates = new Batcher<Execution, void>({
    max: GROUP,
    run: async (batch) => {
      const writes: Array<Write & { p: (typeof batch)[number] }> = [];
      for (const p of batch) {
        const w = { ...this.prepare(p.item, 'create'), p };
        if (w.bytes > this.recordBytes) p.reject(new LimitExceededError('record_bytes', recordOverLimit(w.bytes, this.recordBytes)));
        else writes.push(w);
      }
      const settle = (out: Committed<(typeof writes)[number]>) => {
        for (const w of out.done) w.p.resolve();
        for (const w of out.tooLarge) w.p.reject(new LimitExceededError('record_bytes', recordRefusedByEtcd(w.bytes, this.recordBytes)));
      };
      const out = await this.commit(writes);
      settle(out);
      // One id was taken already (never for fresh ids): find which, one by one.
      for (const w of out.lost) {
        const one = await this.commit([w]);
        settle(one);
        if (one.lost.length) w.p.reject(new ConflictError('execution', w.x.id, 'an execution with this id exists already'));
      }
    },
  });

  /** The record's put and its index entry's put (or delete, once terminal), as txn operations. */
  private writeOps(x: Execution): IRequestOp[] {
    return [
      { request_put: { key: Buffer.from(this.key(x.id)), value: Buffer.from(JSON.stringify(x)) } },
      isTerminalExecution(x.state)
        ? { request_delete_range: { key: Buffer.from(this.activeKey(x.id)) } }
        : { request_put: { key: Buffer.from(this.activeKey(x.id)), value: Buffer.from(JSON.stringify(activeEntry(x))) } },
    ];
  }

  /** `x`'s write, guarded by its mod revision being `expect` (or by its not existing yet). */
  private prepare(x: Execution, expect: number | 'create'): Write {
    const key = Buffer.from(this.key(x.id));
    const compare: ICompare =
      expect === 'create' ? { key, target: 'Create', result: 'Equal', create_revision: 0 } : { key, target: 'Mod', result: 'Equal', mod_revision: expect };
    const ops = this.writeOps(x);
    const size = (b: Buffer | undefined) => b?.length ?? 0;
    const bytes = ops.reduce((n, op) => n + size(op.request_put?.key) + size(op.request_put?.value) + size(op.request_delete_range?.key), 0);
    return { x, compare, ops, bytes };
  }

  /**
   * Writes in as few transactions as possible: at most GROUP executions and record_bytes each.
   * A transaction etcd refuses for its size is split in two and each half tried again, so a
   * record too large for etcd ends up alone in `tooLarge` and every other one is written.
   */
  private async commit<W extends Write>(writes: W[]): Promise<Committed<W>> {
    const out: Committed<W> = { done: [], lost: [], tooLarge: [] };
    let chunk: W[] = [];
    let bytes = 0;
    for (const w of writes) {
      if (chunk.length === GROUP || (chunk.length > 0 && bytes + w.bytes > this.recordBytes)) {
        await this.commitChunk(chunk, out);
        [chunk, bytes] = [[], 0];
      }
      chunk.push(w);
      bytes += w.bytes;
    }
    if (chunk.length) await this.commitChunk(chunk, out);
    return out;
  }

  private async commitChunk<W extends Write>(chunk: W[], out: Committed<W>): Promise<void> {
    let res;
    try {
      res = await this.kv.client.kv.txn({ compare: chunk.map((w) => w.compare), success: chunk.flatMap((w) => w.ops) });
    } catch (err) {
      if (!isTooLarge(err)) throw err;
      if (chunk.length === 1) {
        out.tooLarge.push(chunk[0]!);
        return;
      }
      const half = Math.ceil(chunk.length / 2);
      await this.commitChunk(chunk.slice(0, half), out);
      await this.commitChunk(chunk.slice(half), out);
      return;
    }
    if (!res.succeeded) {
      for (const w of chunk) this.recent.delete(w.x.id);
      out.lost.push(...chunk);
      return;
    }
    const revision = Number(res.header.revision);
    for (const w of chunk) this.remember(w.x, revision);
    out.done.push(...chunk);
  }

  /**
   * Records this store wrote last, at the revision it wrote them: the next update of one starts
   * from here instead of reading it back (its compare still guards against other writers).
   * Terminal records are rarely written again, so they are not kept.
   */
  private readonly recent = new Map<string, Versioned<Execution>>();

  private remember(x: Execution, revision: number): void {
    this.recent.delete(x.id);
    if (isTerminalExecution(x.state)) return;
    this.recent.set(x.id, { value: x, revision });
    if (this.recent.size > RECENT_MAX) this.recent.delete(this.recent.keys().next().value!);
  }

  /**
   * Reads for callers that only look (BeginTask): reads that arrive while one is in flight are
   * done together in the next round trip, and callers asking for the same execution share one
   * parsed copy, which they must not change.
   */
  getShared(id: string): Promise<Versioned<Execution> | undefined> {
    return this.reads.add(id);
  }

  private readonly reads = new Batcher<string, Versioned<Execution> | undefined>({
    max: 512,
    run: async (batch) => {
      const found = await this.getMany([...new Set(batch.map((p) => p.item))]);
      for (const p of batch) p.resolve(found.get(p.item));
    },
  });

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
   * given and returns whether it changed anything; nothing is written when it did not. A change
   * that makes the record too large to write fails the execution instead (see UpdateResult).
   */
  update(id: string, fn: (x: Execution) => boolean): Promise<UpdateResult> {
    return this.updateOne(id, fn, true);
  }

  /** update(); without `isolate`, a write too large is an error rather than a failed execution. */
  private async updateOne(id: string, fn: (x: Execution) => boolean, isolate: boolean): Promise<UpdateResult> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const cur = await this.get(id);
      if (!cur) throw new NotFoundError('execution', id);
      const next = structuredClone(cur.value);
      if (!fn(next)) return { execution: cur.value, changed: false };
      const w = this.prepare(next, cur.revision);
      if (isolate && w.bytes > this.recordBytes) return this.refuse(id, recordOverLimit(w.bytes, this.recordBytes));
      const out = await this.commit([w]);
      if (out.tooLarge.length) {
        const why = recordRefusedByEtcd(w.bytes, this.recordBytes);
        if (isolate) return this.refuse(id, why);
        throw new LimitExceededError('record_bytes', why);
      }
      if (out.done.length) return { execution: next, changed: true };
    }
    throw new ConflictError('execution', id, 'gave up after 50 concurrent updates');
  }

  /**
   * A change to `id` that cannot be written, for its size: the execution fails with the reason
   * instead, over the record as stored (which etcd took), unless it has ended already; then the
   * change is dropped. Its tasks not started never start (BeginTask refuses them).
   */
  private async refuse(id: string, reason: string): Promise<UpdateResult> {
    const r = await this.updateOne(id, (x) => failExecution(x, reason, this.now()), false);
    return { ...r, refused: reason };
  }

  /** Writes `x` if the record is still at `revision`, keeping the active index in step. */
  async swap(x: Execution, revision: number): Promise<boolean> {
    const w = this.prepare(x, revision);
    const out = await this.commit([w]);
    if (out.tooLarge.length) throw new LimitExceededError('record_bytes', recordRefusedByEtcd(w.bytes, this.recordBytes));
    return out.done.length > 0;
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
   * transactions as possible, each guarded by every record's mod revision. Records this store
   * wrote last are not read back. A transaction that loses to a concurrent writer is read again
   * and retried; after a few rounds, what is left is redone execution by execution with
   * update(). A change too large to write fails its execution alone (`refused` in its result)
   * and never holds up the others. Executions that do not exist are missing from the result.
   */
  async updateMany(ids: string[], fn: (x: Execution) => boolean): Promise<Map<string, UpdateResult>> {
    const result = new Map<string, UpdateResult>();
    const refused = new Map<string, string>();
    let todo = [...new Set(ids)];
    for (let round = 0; round < 3 && todo.length; round++) {
      const current = new Map<string, Versioned<Execution>>();
      const toRead: string[] = [];
      for (const id of todo) {
        const r = round === 0 ? this.recent.get(id) : undefined;
        if (r) current.set(id, r);
        else toRead.push(id);
      }
      for (const [id, v] of await this.getMany(toRead)) current.set(id, v);
      const writes: Write[] = [];
      for (const [id, cur] of current) {
        const next = structuredClone(cur.value);
        if (!fn(next)) result.set(id, { execution: cur.value, changed: false });
        else {
          const w = this.prepare(next, cur.revision);
          if (w.bytes > this.recordBytes) refused.set(id, recordOverLimit(w.bytes, this.recordBytes));
          else writes.push(w);
        }
      }
      const out = await this.commit(writes);
      for (const w of out.done) result.set(w.x.id, { execution: w.x, changed: true });
      for (const w of out.tooLarge) refused.set(w.x.id, recordRefusedByEtcd(w.bytes, this.recordBytes));
      todo = out.lost.map((w) => w.x.id);
    }
    for (const id of todo) result.set(id, await this.update(id, fn));
    for (const [id, reason] of refused) result.set(id, await this.refuse(id, reason));
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
    ...(released.length && x.dispatcher ? { dispatcher: x.dispatcher } : {}),
    created_at_ms: x.created_at_ms,
    deadline_ms: x.deadline_ms,
    wait_until_ms: waits.length ? Math.min(...waits) : 0,
    executors: [...executors],
  };
}
