// Executions in etcd: executions/<id> holds the record (a large one compressed, see
// execution-codec.ts); executions-active/<id> a small index entry for each execution not yet
// terminal, so the sweeper and the expiry handler scan only those;
// executions-by-job/<job>/<id> (empty) and, once it has ended, executions-by-state/<STATE>/<id>
// (holding the job's name) let lists by job or by state read only what they show, and let
// retention find the oldest finished executions (read in etcd-execution-indexes.ts). All change
// in one transaction guarded by the record's mod revision (CAS). A record too large to write
// (limits.record_bytes, or etcd's own request limit) never holds up the others written with it:
// that execution fails alone, with the reason.
// idempotency/<requester>/<sha256 of the key> names the execution an idempotency key started;
// it is created in the transaction that creates the execution, only if it does not exist, and
// lapses with its hourly lease 24 to 25 h later.

import { EtcdLeaseInvalidError, type ICompare, type IKeyValue, type IRequestOp } from 'etcd3';
import { isTerminalExecution, type Execution, type ExecutionState } from '../domain/execution.js';
import { failExecution } from '../domain/execution-rules.js';
import { copyExecution } from '../domain/task-index.js';
import { IDEMPOTENCY_WINDOW_MS } from '../domain/idempotency.js';
import { LIMIT_DEFAULTS, recordOverLimit, recordRefusedByEtcd } from '../domain/limits.js';
import { ConflictError, LimitExceededError, NotFoundError } from '../errors.js';
import { Batcher } from '../util/batcher.js';
import type { Logger } from '../util/log.js';
import { decodeExecution, encodeExecution } from './execution-codec.js';
import { ExecutionIndexes, TXN_OPS } from './etcd-execution-indexes.js';
import { watchKeys } from './key-watch.js';
import { isTooLarge, type Kv } from './kv.js';
import { BucketLeases, Leases } from './leases.js';
import {
  activeEntry,
  type ActiveEntry,
  type CreateResult,
  type ExecutionStore,
  type FinishedEntry,
  type IdempotencyClaim,
  type IdempotencyEntry,
  type ListFilter,
  type ListPage,
  noCounts,
  type RetentionStatus,
  type StateCounts,
  type UpdateResult,
  type Versioned,
} from './store.js';

export type { ActiveEntry, CreateResult, FinishedEntry, IdempotencyClaim, IdempotencyEntry, ListFilter, ListPage, UpdateResult } from './store.js';

/**
 * Executions per group-commit transaction: up to four writes each (the record, its active
 * entry, its job index entry and an idempotency key on create; the record, its active entry
 * and two state index changes on update), and etcd takes 128.
 */
const GROUP = 32;
/** Records kept from this store's own writes (see `recent`). */
const RECENT_MAX = 10_000;

interface NewExecution {
  x: Execution;
  claim?: IdempotencyClaim;
}

export interface ExecutionStoreOptions {
  /** limits.record_bytes: the largest write of one execution (record and index entry). */
  recordBytes?: number;
  now?: () => number;
  /**
   * Told of each record this store wrote, once etcd has taken it, with the version it replaced
   * (undefined for a new record): how the controller's metrics see executions and tasks change.
   */
  onWritten?: (prev: Execution | undefined, next: Execution) => void;
}

/** One execution's part of a transaction: its compares, its writes, and their size. */
interface Write {
  x: Execution;
  /** The version it replaces; undefined for a new record. */
  prev: Execution | undefined;
  compares: ICompare[];
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

export class EtcdExecutionStore implements ExecutionStore {
  private readonly recordBytes: number;
  private readonly now: () => number;
  private readonly onWritten: ExecutionStoreOptions['onWritten'];
  /** Idempotency entries share one lease per hour, which outlives each of them by 24 to 25 h. */
  private readonly keyLeases: BucketLeases;
  /** Lists, counts and retention's reads, over the index entries this store writes. */
  private readonly indexes: ExecutionIndexes;

  constructor(
    private readonly kv: Kv,
    o: ExecutionStoreOptions = {},
  ) {
    this.recordBytes = o.recordBytes ?? LIMIT_DEFAULTS.record_bytes;
    this.now = o.now ?? Date.now;
    this.onWritten = o.onWritten;
    const leases = new Leases(kv);
    this.keyLeases = new BucketLeases((ttl) => leases.grant(ttl), { lifeMs: IDEMPOTENCY_WINDOW_MS, bucketMs: 3600_000, now: this.now });
    this.indexes = new ExecutionIndexes(kv, this, (ids) => this.getMany(ids));
  }

  key(id: string): string {
    return this.kv.key('executions', id);
  }
  activeKey(id: string): string {
    return this.kv.key('executions-active', id);
  }
  jobIndexKey(job: string, id: string): string {
    return this.kv.key('executions-by-job', encodeURIComponent(job), id);
  }
  stateIndexKey(state: ExecutionState, id: string): string {
    return this.kv.key('executions-by-state', state, id);
  }
  idempotencyKey(requester: string, keyHash: string): string {
    return this.kv.key('idempotency', encodeURIComponent(requester), keyHash);
  }

  /**
   * Records a new execution; with an idempotency claim, only if that key is free, in the same
   * transaction (a check before it would let two concurrent retries both create one). Creates
   * that arrive while a transaction is in flight are written together in the next one (group
   * commit): no waiting when idle, far fewer writes under load. A record too large to write is
   * refused (LimitExceededError) and the others are written.
   */
  create(x: Execution, claim?: IdempotencyClaim): Promise<CreateResult> {
    return this.creates.add({ x, claim });
  }

  /** The execution an idempotency key started, while the key lasts. */
  async idempotencyEntry(requester: string, keyHash: string): Promise<IdempotencyEntry | undefined> {
    return (await this.kv.get<IdempotencyEntry>(this.idempotencyKey(requester, keyHash)))?.value;
  }

  private readonly creates = new Batcher<NewExecution, CreateResult>({
    max: GROUP,
    run: async (batch) => {
      type Item = (typeof batch)[number];
      const tooBig = (n: NewExecution, bytes: number) => new LimitExceededError('record_bytes', recordOverLimit(bytes, this.recordBytes));
      let todo: Item[] = batch;
      const keys = batch.flatMap(({ item }) => (item.claim ? [this.idempotencyKey(item.claim.requester, item.claim.keyHash)] : []));
      // etcd refuses a transaction that writes a key twice: two creates under one idempotency
      // key go one by one below, where the second finds the first's entry.
      if (new Set(keys).size === keys.length) {
        for (let attempt = 0; todo.length; attempt++) {
          const lease = keys.length ? await this.keyLeases.current() : '';
          const writes: Array<Write & { p: Item }> = [];
          for (const p of todo) {
            const w = { ...this.prepare(p.item.x, 'create', undefined, p.item.claim, lease), p };
            if (w.bytes > this.recordBytes) p.reject(tooBig(p.item, w.bytes));
            else writes.push(w);
          }
          const out = emptyCommitted<(typeof writes)[number]>();
          try {
            await this.commit(writes, out);
          } catch (err) {
            // etcd no longer has the hour's lease: once more, on a new one, for what is left.
            if (!(err instanceof EtcdLeaseInvalidError) || attempt > 0) throw err;
            await this.keyLeases.forget(lease);
          }
          for (const w of out.done) w.p.resolve({ created: true });
          for (const w of out.tooLarge) w.p.reject(new LimitExceededError('record_bytes', recordRefusedByEtcd(w.bytes, this.recordBytes)));
          const settled = new Set([...out.done, ...out.tooLarge].map((w) => w.p));
          // An id was taken already (never for fresh ids) or, far more likely, an idempotency
          // key (a retry): found one by one below, so that the others are still created.
          const lost = new Set(out.lost.map((w) => w.p));
          todo = writes.filter((w) => !settled.has(w.p) && !lost.has(w.p)).map((w) => w.p);
          if (!todo.length) {
            todo = [...lost];
            break;
          }
        }
      }
      await Promise.all(todo.map((p) => this.createOne(p.item).then(p.resolve, p.reject)));
    },
  });

  private async createOne(n: NewExecution): Promise<CreateResult> {
    const entryKey = n.claim && this.idempotencyKey(n.claim.requester, n.claim.keyHash);
    for (let attempt = 0; ; attempt++) {
      const lease = n.claim ? await this.keyLeases.current() : '';
      const w = this.prepare(n.x, 'create', undefined, n.claim, lease);
      if (w.bytes > this.recordBytes) throw new LimitExceededError('record_bytes', recordOverLimit(w.bytes, this.recordBytes));
      let res;
      try {
        res = await this.kv.client.kv.txn({
          compare: w.compares,
          success: w.ops,
          failure: [...(entryKey ? [{ request_range: { key: Buffer.from(entryKey) } }] : []), { request_range: { key: Buffer.from(this.key(n.x.id)) } }],
        });
      } catch (err) {
        if (isTooLarge(err)) throw new LimitExceededError('record_bytes', recordRefusedByEtcd(w.bytes, this.recordBytes));
        if (!(err instanceof EtcdLeaseInvalidError) || attempt > 0) throw err;
        await this.keyLeases.forget(lease);
        continue;
      }
      if (res.succeeded) {
        this.remember(n.x, Number(res.header.revision));
        this.onWritten?.(undefined, n.x);
        return { created: true };
      }
      // The record is there already, byte for byte as this write has it: this very write,
      // committed by a try whose answer was lost. The etcd client sends a call again when the
      // connection fails (a leader killed mid-call), and that try finds the keys taken by the
      // first. It is created, and its job messages must go out: taken for a retry under the
      // idempotency key, it was handed back with none sent.
      const stored = res.responses[entryKey ? 1 : 0]?.response_range?.kvs[0]?.value;
      if (stored && stored.equals(recordBytesOf(w))) {
        this.onWritten?.(undefined, n.x);
        return { created: true };
      }
      const entry = entryKey ? res.responses[0]?.response_range?.kvs[0] : undefined;
      if (entry) return { created: false, existing: JSON.parse(entry.value.toString()) as IdempotencyEntry };
      throw new ConflictError('execution', n.x.id, 'an execution with this id exists already');
    }
  }

  /**
   * The record's put and its index entries' changes, as txn operations, given the version it
   * replaces (`prev`, undefined for a new record): the active entry is put (or deleted, once
   * terminal), the job entry is put with a new record, and the state entry follows a change of
   * finished state (a late result may turn FAILED into SUCCEEDED).
   */
  private writeOps(x: Execution, prev: Execution | undefined): IRequestOp[] {
    const put = (key: string, value: string | Buffer): IRequestOp => ({ request_put: { key: Buffer.from(key), value: typeof value === 'string' ? Buffer.from(value) : value } });
    const del = (key: string): IRequestOp => ({ request_delete_range: { key: Buffer.from(key) } });
    const ops = [
      put(this.key(x.id), encodeExecution(x)),
      isTerminalExecution(x.state) ? del(this.activeKey(x.id)) : put(this.activeKey(x.id), JSON.stringify(activeEntry(x))),
    ];
    if (!prev) ops.push(put(this.jobIndexKey(x.job, x.id), ''));
    if (prev?.state !== x.state) {
      if (prev && isTerminalExecution(prev.state)) ops.push(del(this.stateIndexKey(prev.state, x.id)));
      if (isTerminalExecution(x.state)) ops.push(put(this.stateIndexKey(x.state, x.id), x.job));
    }
    return ops;
  }

  /**
   * `x`'s write over `prev` (undefined for a new record), guarded by its mod revision being
   * `expect` (or by its not existing yet); with an idempotency claim, also by the key being
   * free, and the key's entry written on `lease`.
   */
  private prepare(x: Execution, expect: number | 'create', prev: Execution | undefined, claim?: IdempotencyClaim, lease = ''): Write {
    const key = Buffer.from(this.key(x.id));
    const free = (k: string): ICompare => ({ key: Buffer.from(k), target: 'Create', result: 'Equal', create_revision: 0 });
    const compares: ICompare[] = [expect === 'create' ? free(this.key(x.id)) : { key, target: 'Mod', result: 'Equal', mod_revision: expect }];
    const ops = this.writeOps(x, prev);
    if (claim) {
      const entryKey = this.idempotencyKey(claim.requester, claim.keyHash);
      compares.push(free(entryKey));
      const entry: IdempotencyEntry = { execution_id: x.id, digest: claim.digest, created_at_ms: x.created_at_ms };
      ops.push({ request_put: { key: Buffer.from(entryKey), value: Buffer.from(JSON.stringify(entry)), lease } });
    }
    const size = (b: Buffer | undefined) => b?.length ?? 0;
    const bytes = ops.reduce((n, op) => n + size(op.request_put?.key) + size(op.request_put?.value) + size(op.request_delete_range?.key), 0);
    return { x, prev, compares, ops, bytes };
  }

  /**
   * Writes in as few transactions as possible: at most GROUP executions and record_bytes each.
   * A transaction etcd refuses for its size is split in two and each half tried again, so a
   * record too large for etcd ends up alone in `tooLarge` and every other one is written.
   */
  private async commit<W extends Write>(writes: W[], out: Committed<W> = emptyCommitted<W>()): Promise<Committed<W>> {
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
      res = await this.kv.client.kv.txn({ compare: chunk.flatMap((w) => w.compares), success: chunk.flatMap((w) => w.ops) });
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
    for (const w of chunk) {
      this.remember(w.x, revision);
      this.onWritten?.(w.prev, w.x);
    }
    out.done.push(...chunk);
  }

  /**
   * Records this store wrote last, at the revision it wrote them: the next update of one starts
   * from here instead of reading it back (its compare still guards against other writers).
   * Terminal records are rarely written again, so they are not kept.
   */
  private readonly recent = new Map<string, Versioned<Execution>>();

  ownCopy(id: string): Versioned<Execution> | undefined {
    return this.recent.get(id);
  }

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
    return this.kv.get(this.key(id), decodeExecution);
  }

  async mustGet(id: string): Promise<Execution> {
    const x = await this.get(id);
    if (!x) throw new NotFoundError('execution', id, 'grid-cli executions list shows recent ones');
    return x.value;
  }

  /**
   * Only the newest version is kept, unparsed until it is read; not parsed at all when this
   * store holds its own copy of that version or of a later one it wrote (callers must not change
   * what they get). Watched from a fresh read, not
   * from `afterRevision`: etcd may have compacted that long ago (an execution that has been
   * running for a while); after compaction or a lost connection the record is read again, and a
   * version not read yet is offered.
   */
  async *changes(id: string, afterRevision: number, signal: AbortSignal): AsyncIterable<Execution> {
    let sent = afterRevision;
    let latest: IKeyValue | undefined;
    let wake: (() => void) | undefined;
    const offer = (kv: IKeyValue | undefined) => {
      if (!kv || Number(kv.mod_revision) <= sent) return;
      latest = kv;
      wake?.();
    };
    const watch = watchKeys(this.kv, { key: this.key(id), onPut: offer, onSnapshot: (kvs) => offer(kvs[0]) });
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      await watch.ready;
      while (!signal.aborted) {
        if (!latest) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        if (!latest) continue;
        // etcd may send the watch its put before it answers the write that made it: while this
        // store writes the record, its copy of that version is not in yet. Wait for the write.
        const writing = this.writing.get(id);
        if (writing && !this.ownAt(id, Number(latest.mod_revision), true)) await writing;
        const kv = latest;
        latest = undefined;
        // This store's own copy, when it is this version or a later one it wrote since.
        const v = this.ownAt(id, Number(kv.mod_revision), true) ?? this.decode(id, kv);
        sent = v.revision;
        yield v.value;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      await watch.close();
    }
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
      const next = copyExecution(cur.value);
      if (!fn(next)) return { execution: cur.value, changed: false };
      const w = this.prepare(next, cur.revision, cur.value);
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

  /** Writes `x` over `prev` if the record is still at `revision`, keeping the indexes in step. */
  async swap(x: Execution, prev: Execution, revision: number): Promise<boolean> {
    const w = this.prepare(x, revision, prev);
    const out = await this.commit([w]);
    if (out.tooLarge.length) throw new LimitExceededError('record_bytes', recordRefusedByEtcd(w.bytes, this.recordBytes));
    return out.done.length > 0;
  }

  /**
   * Reads many executions in one round trip per 128 (etcd's limit of operations per txn). A
   * record this store holds its own copy of is first asked for its revision alone: while it is
   * still at the copy's revision, it is neither sent again nor parsed (a 10,000-task fan-out's
   * record is about 450 KB compressed and 2.8 MB of JSON). The copy is shared: callers must not
   * change what they get.
   */
  async getMany(ids: string[]): Promise<Map<string, Versioned<Execution>>> {
    const out = new Map<string, Versioned<Execution>>();
    const held = ids.filter((id) => this.recent.has(id));
    const toRead = ids.filter((id) => !this.recent.has(id));
    for (let i = 0; i < held.length; i += TXN_OPS) {
      const chunk = held.slice(i, i + TXN_OPS);
      const res = await this.kv.client.kv.txn({ success: chunk.map((id) => ({ request_range: { key: Buffer.from(this.key(id)), keys_only: true } })) });
      res.responses.forEach((r, j) => {
        const kv = r.response_range?.kvs[0];
        if (!kv) return; // deleted since
        const id = chunk[j]!;
        const own = this.ownAt(id, Number(kv.mod_revision));
        if (own) out.set(id, own);
        else toRead.push(id);
      });
    }
    for (let i = 0; i < toRead.length; i += TXN_OPS) {
      const chunk = toRead.slice(i, i + TXN_OPS);
      const res = await this.kv.client.kv.txn({ success: chunk.map((id) => ({ request_range: { key: Buffer.from(this.key(id)) } })) });
      res.responses.forEach((r, j) => {
        const kv = r.response_range?.kvs[0];
        if (kv) out.set(chunk[j]!, this.decode(chunk[j]!, kv));
      });
    }
    return out;
  }

  /** A stored record, parsed; or this store's own copy of it, when that is at the same revision. */
  private decode(id: string, kv: IKeyValue): Versioned<Execution> {
    const revision = Number(kv.mod_revision);
    return this.ownAt(id, revision) ?? { value: decodeExecution(kv.value), revision };
  }

  /** This store's own copy of the record at `revision` (or, with `orLater`, at a later one it wrote). */
  private ownAt(id: string, revision: number, orLater = false): Versioned<Execution> | undefined {
    const own = this.recent.get(id);
    return own && (own.revision === revision || (orLater && own.revision > revision)) ? own : undefined;
  }

  /**
   * Group commit: applies `fn` to each execution and writes all the changes in as few
   * transactions as possible, each guarded by every record's mod revision. Records this store
   * wrote last are not read back. A transaction that loses to a concurrent writer is read again
   * and retried; after a few rounds, what is left is redone execution by execution with
   * update(). A change too large to write fails its execution alone (`refused` in its result)
   * and never holds up the others. Executions that do not exist are missing from the result.
   */
  async updateMany(ids: string[], fn: (x: Execution) => boolean, mayChange?: (x: Execution) => boolean): Promise<Map<string, UpdateResult>> {
    const unique = [...new Set(ids)];
    // Group commits of one record from this process go one after another (claims and events of
    // a big fan-out arrive together): each starts from the last one's write instead of losing
    // its compare to it and reading the whole record back.
    const before = unique.flatMap((id) => this.writing.get(id) ?? []);
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    for (const id of unique) this.writing.set(id, mine);
    try {
      await Promise.all(before);
      return await this.updateManyNow(unique, fn, mayChange);
    } finally {
      done();
      for (const id of unique) if (this.writing.get(id) === mine) this.writing.delete(id);
    }
  }

  /** The records updateMany is writing now or is about to, each with the write that ends last. */
  private readonly writing = new Map<string, Promise<void>>();

  private async updateManyNow(ids: string[], fn: (x: Execution) => boolean, mayChange?: (x: Execution) => boolean): Promise<Map<string, UpdateResult>> {
    const result = new Map<string, UpdateResult>();
    const refused = new Map<string, string>();
    let todo = ids;
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
        if (mayChange && !mayChange(cur.value)) {
          result.set(id, { execution: cur.value, changed: false });
          continue;
        }
        const next = copyExecution(cur.value);
        if (!fn(next)) result.set(id, { execution: cur.value, changed: false });
        else {
          const w = this.prepare(next, cur.revision, cur.value);
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

  /**
   * Newest first (ids are time-ordered), filtered, at most `limit`, from `before` on (see
   * ExecutionIndexes.list).
   */
  list(f: ListFilter): Promise<ListPage> {
    return this.indexes.list(f);
  }

  /** Writes the index entries of records written before the indexes existed (see ExecutionIndexes). */
  backfillIndexes(log: Logger): Promise<void> {
    return this.indexes.backfillIndexes(log);
  }

  /** How many executions have ended (and are still kept). */
  countFinished(): Promise<number> {
    return this.indexes.countFinished();
  }

  countByState(f: { job?: string; maxScan: number }): Promise<StateCounts> {
    return this.indexes.countByState(f);
  }

  /** The `n` oldest finished executions (by id, so by creation), oldest first. */
  oldestFinished(n: number): Promise<FinishedEntry[]> {
    return this.indexes.oldestFinished(n);
  }

  /**
   * Deletes finished executions with their index entries, in transactions of up to 42 (three
   * deletes each). Each delete is guarded by its state entry, so one whose result changed since
   * it was listed (a late result) is left for the next round. Returns how many were deleted.
   */
  async deleteFinished(entries: FinishedEntry[]): Promise<number> {
    let deleted = 0;
    const PER_TXN = Math.floor(TXN_OPS / 3);
    for (let i = 0; i < entries.length; i += PER_TXN) {
      const chunk = entries.slice(i, i + PER_TXN);
      const one = (e: FinishedEntry) => ({
        compare: [{ key: Buffer.from(this.stateIndexKey(e.state, e.id)), target: 'Version' as const, result: 'Greater' as const, version: 0 }],
        success: [this.key(e.id), this.stateIndexKey(e.state, e.id), this.jobIndexKey(e.job, e.id)].map((key) => ({ request_delete_range: { key: Buffer.from(key) } })),
      });
      const all = chunk.map(one);
      const res = await this.kv.client.kv.txn({ compare: all.flatMap((t) => t.compare), success: all.flatMap((t) => t.success) });
      if (res.succeeded) {
        deleted += chunk.length;
      } else {
        for (const t of all) if ((await this.kv.client.kv.txn(t)).succeeded) deleted++;
      }
      for (const e of chunk) this.recent.delete(e.id);
    }
    return deleted;
  }

  retentionStatus(): Promise<RetentionStatus> {
    return this.indexes.retentionStatus();
  }

  recordPruned(newestMs: number, deleted: number): Promise<void> {
    return this.indexes.recordPruned(newestMs, deleted);
  }

  active(): Promise<ActiveEntry[]> {
    return this.indexes.active();
  }
}

function emptyCommitted<W extends Write>(): Committed<W> {
  return { done: [], lost: [], tooLarge: [] };
}

/** The record's bytes as a write puts them (its first operation, see writeOps). */
function recordBytesOf(w: Write): Buffer {
  const v = w.ops[0]?.request_put?.value;
  return Buffer.isBuffer(v) ? v : Buffer.from(v ?? '');
}
