// Executions in etcd: executions/<id> holds the record; executions-active/<id> a small index
// entry for each execution not yet terminal, so the sweeper and the expiry handler scan only
// those; executions-by-job/<job>/<id> (empty) and, once it has ended,
// executions-by-state/<STATE>/<id> (holding the job's name) let lists by job or by state read
// only what they show, and let retention find the oldest finished executions. All change in one
// transaction guarded by the record's mod revision (CAS).
// idempotency/<requester>/<sha256 of the key> names the execution an idempotency key started;
// it is created in the transaction that creates the execution, only if it does not exist, and
// lapses with its hourly lease 24 to 25 h later.

import { EtcdLeaseInvalidError, type IRequestOp } from 'etcd3';
import { isTerminalExecution, type Execution, type ExecutionState } from '../domain/execution.js';
import { IDEMPOTENCY_WINDOW_MS } from '../domain/idempotency.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { Batcher } from '../util/batcher.js';
import type { Logger } from '../util/log.js';
import type { Kv, Versioned } from './kv.js';
import { BucketLeases, Leases } from './leases.js';

/** What the sweeper needs to know about an active execution without reading it. */
export interface ActiveEntry {
  id: string;
  /** Absent in entries written before it was added. */
  job?: string;
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
/**
 * Executions per group-commit transaction: up to four writes each (the record, its active
 * entry, its job index entry and an idempotency key on create; the record, its active entry
 * and two state index changes on update), and etcd takes 128.
 */
const GROUP = 32;
/** Records per backfill transaction (two index writes each at most). */
const PER_BACKFILL = Math.floor(TXN_OPS / 2);
/** The states an execution ends in: those with an executions-by-state index. */
const FINISHED: readonly ExecutionState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
/** Records kept from this store's own writes (see `recent`). */
const RECENT_MAX = 10_000;

/** An idempotency key that a new execution takes: whose it is, the key's SHA-256 and the request's digest. */
export interface IdempotencyClaim {
  requester: string;
  keyHash: string;
  digest: string;
}

/** What an idempotency key holds: the execution it started, and the digest of that request. */
export interface IdempotencyEntry {
  execution_id: string;
  digest: string;
  created_at_ms: number;
}

/** A create either recorded the execution, or found its idempotency key taken by `existing`. */
export type CreateResult = { created: true } | { created: false; existing: IdempotencyEntry };

interface NewExecution {
  x: Execution;
  claim?: IdempotencyClaim;
}

export interface ListFilter {
  job?: string;
  state?: ExecutionState;
  limit: number;
  /** Only executions older than this id (the last one of the page before). */
  before?: string;
}

export interface ListPage {
  /** Newest first. */
  executions: Execution[];
  /** Pass as `before` for the next page; "" when there is none. */
  next: string;
  /** Keys read from etcd to answer (index entries and records). */
  keysRead: number;
}

/** A finished execution, as its state index entry names it. */
export interface FinishedEntry {
  id: string;
  job: string;
  state: ExecutionState;
}

export class EtcdExecutionStore {
  /** Idempotency entries share one lease per hour, which outlives each of them by 24 to 25 h. */
  private readonly keyLeases: BucketLeases;

  constructor(
    private readonly kv: Kv,
    o: { now?: () => number } = {},
  ) {
    const leases = new Leases(kv);
    this.keyLeases = new BucketLeases((ttl) => leases.grant(ttl), { lifeMs: IDEMPOTENCY_WINDOW_MS, bucketMs: 3600_000, now: o.now ?? Date.now });
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
   * commit): no waiting when idle, far fewer writes under load.
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
    run: async (chunk) => {
      const keys = chunk.flatMap(({ item }) => (item.claim ? [this.idempotencyKey(item.claim.requester, item.claim.keyHash)] : []));
      // etcd refuses a transaction that writes a key twice: two creates under one idempotency
      // key go one by one below, where the second finds the first's entry.
      if (new Set(keys).size === keys.length) {
        const res = await this.createTxn(chunk.map((p) => p.item));
        if (res.succeeded) {
          const revision = Number(res.header.revision);
          for (const p of chunk) {
            this.remember(p.item.x, revision);
            p.resolve({ created: true });
          }
          return;
        }
      }
      // An id was taken already (never for fresh ids) or, far more likely, an idempotency key
      // (a retry): find which, one by one, so that the others are still created.
      await Promise.all(chunk.map((p) => this.createOne(p.item).then(p.resolve, p.reject)));
    },
  });

  private async createOne(n: NewExecution): Promise<CreateResult> {
    const entryKey = n.claim && this.idempotencyKey(n.claim.requester, n.claim.keyHash);
    const res = await this.createTxn([n], entryKey ? [{ request_range: { key: Buffer.from(entryKey) } }] : []);
    if (res.succeeded) {
      this.remember(n.x, Number(res.header.revision));
      return { created: true };
    }
    const entry = res.responses[0]?.response_range?.kvs[0];
    if (entry) return { created: false, existing: JSON.parse(entry.value.toString()) as IdempotencyEntry };
    throw new ConflictError('execution', n.x.id, 'an execution with this id exists already');
  }

  /**
   * One transaction creating `items` if their ids and idempotency keys are all free. The keys'
   * entries go on the current hourly lease; if etcd no longer has it, once more on a new one.
   */
  private async createTxn(items: NewExecution[], failure: IRequestOp[] = []) {
    const keyed = items.some((n) => n.claim);
    for (let attempt = 0; ; attempt++) {
      const lease = keyed ? await this.keyLeases.current() : '';
      try {
        return await this.kv.client.kv.txn({
          compare: items.flatMap((n) => this.createCompares(n)),
          success: items.flatMap((n) => this.createOps(n, lease)),
          failure,
        });
      } catch (err) {
        if (!(err instanceof EtcdLeaseInvalidError) || attempt > 0) throw err;
        await this.keyLeases.forget(lease);
      }
    }
  }

  /** The execution's id and its idempotency key (if any) must both be free. */
  private createCompares(n: NewExecution) {
    const free = (key: string) => ({ key: Buffer.from(key), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 });
    const compares = [free(this.key(n.x.id))];
    if (n.claim) compares.push(free(this.idempotencyKey(n.claim.requester, n.claim.keyHash)));
    return compares;
  }

  private createOps(n: NewExecution, lease: string): IRequestOp[] {
    const ops: IRequestOp[] = this.writeOps(n.x, undefined);
    if (n.claim) {
      const entry: IdempotencyEntry = { execution_id: n.x.id, digest: n.claim.digest, created_at_ms: n.x.created_at_ms };
      ops.push({ request_put: { key: Buffer.from(this.idempotencyKey(n.claim.requester, n.claim.keyHash)), value: Buffer.from(JSON.stringify(entry)), lease } });
    }
    return ops;
  }

  /**
   * The record's put and its index entries' changes, as txn operations, given the version it
   * replaces (`prev`, undefined for a new record): the active entry is put (or deleted, once
   * terminal), the job entry is put with a new record, and the state entry follows a change of
   * finished state (a late result may turn FAILED into SUCCEEDED).
   */
  private writeOps(x: Execution, prev: Execution | undefined): IRequestOp[] {
    const put = (key: string, value: string): IRequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });
    const del = (key: string): IRequestOp => ({ request_delete_range: { key: Buffer.from(key) } });
    const ops = [
      put(this.key(x.id), JSON.stringify(x)),
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
   * given and returns whether it changed anything; nothing is written when it did not.
   */
  async update(id: string, fn: (x: Execution) => boolean): Promise<{ execution: Execution; changed: boolean }> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const cur = await this.get(id);
      if (!cur) throw new NotFoundError('execution', id);
      const next = structuredClone(cur.value);
      if (!fn(next)) return { execution: cur.value, changed: false };
      if (await this.swap(next, cur.value, cur.revision)) return { execution: next, changed: true };
    }
    throw new ConflictError('execution', id, 'gave up after 50 concurrent updates');
  }

  /** Writes `x` over `prev` if the record is still at `revision`, keeping the indexes in step. */
  async swap(x: Execution, prev: Execution, revision: number): Promise<boolean> {
    const res = await this.kv.client.kv.txn({
      compare: [{ key: Buffer.from(this.key(x.id)), target: 'Mod', result: 'Equal', mod_revision: revision }],
      success: this.writeOps(x, prev),
    });
    if (res.succeeded) this.remember(x, Number(res.header.revision));
    else this.recent.delete(x.id);
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
   * transactions as possible, each guarded by every record's mod revision. Records this store
   * wrote last are not read back. A transaction that loses to a concurrent writer is read again
   * and retried; after a few rounds, what is left is redone execution by execution with
   * update(). Executions that do not exist are missing from the result.
   */
  async updateMany(ids: string[], fn: (x: Execution) => boolean): Promise<Map<string, { execution: Execution; changed: boolean }>> {
    const result = new Map<string, { execution: Execution; changed: boolean }>();
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
      const changes: Array<{ next: Execution; prev: Execution; revision: number }> = [];
      for (const [id, cur] of current) {
        const next = structuredClone(cur.value);
        if (fn(next)) changes.push({ next, prev: cur.value, revision: cur.revision });
        else result.set(id, { execution: cur.value, changed: false });
      }
      todo = [];
      for (let i = 0; i < changes.length; i += GROUP) {
        const chunk = changes.slice(i, i + GROUP);
        const res = await this.kv.client.kv.txn({
          compare: chunk.map(({ next, revision }) => ({ key: Buffer.from(this.key(next.id)), target: 'Mod' as const, result: 'Equal' as const, mod_revision: revision })),
          success: chunk.flatMap(({ next, prev }) => this.writeOps(next, prev)),
        });
        if (res.succeeded) {
          const revision = Number(res.header.revision);
          for (const { next } of chunk) {
            this.remember(next, revision);
            result.set(next.id, { execution: next, changed: true });
          }
        } else {
          for (const { next } of chunk) {
            this.recent.delete(next.id);
            todo.push(next.id);
          }
        }
      }
    }
    for (const id of todo) result.set(id, await this.update(id, fn));
    return result;
  }

  /**
   * Newest first (ids are time-ordered), filtered, at most `limit`, from `before` on. Reads
   * only what it shows plus index entries: a finished state through executions-by-state (whose
   * entries name the job), an unfinished one through the active entries, a job alone through
   * executions-by-job, nothing through every record.
   */
  async list(f: ListFilter): Promise<ListPage> {
    const limit = Math.max(1, f.limit);
    if (f.state && !isTerminalExecution(f.state)) return this.listActive(f, limit);
    let prefix: string;
    let matches: (k: { key: Buffer; value: Buffer }) => boolean = () => true;
    if (f.state) {
      prefix = this.kv.key('executions-by-state', f.state, '');
      if (f.job) matches = (k) => k.value.toString() === f.job;
    } else if (f.job) prefix = this.kv.key('executions-by-job', encodeURIComponent(f.job), '');
    else return this.listRecords(f, limit);
    const ids: string[] = [];
    let keysRead = 0;
    let end = f.before ? prefix + f.before : undefined;
    const page = Math.min(Math.max(limit + 1, 100), 1000);
    for (;;) {
      const q = this.kv.client.getAll();
      const res = await (end ? q.inRange({ start: prefix, end }) : q.prefix(prefix)).sort('Key', 'Descend').limit(page).exec();
      keysRead += res.kvs.length;
      for (const kv of res.kvs) if (matches(kv)) ids.push(kv.key.toString().slice(prefix.length));
      if (ids.length > limit || res.kvs.length < page) break;
      end = res.kvs[res.kvs.length - 1]!.key.toString();
    }
    return this.page(ids, limit, keysRead);
  }

  /** The records of `ids` (newest first; one more than `limit` says there is a next page). */
  private async page(ids: string[], limit: number, keysRead: number): Promise<ListPage> {
    const shown = ids.slice(0, limit);
    const found = await this.getMany(shown);
    const executions = shown.flatMap((id) => (found.has(id) ? [found.get(id)!.value] : []));
    return { executions, next: ids.length > limit ? shown[shown.length - 1]! : '', keysRead: keysRead + found.size };
  }

  /** Unfinished executions in a state: from the active entries, few by nature. */
  private async listActive(f: ListFilter, limit: number): Promise<ListPage> {
    const entries = await this.kv.list<ActiveEntry>(this.kv.key('executions-active', ''));
    let keysRead = entries.length;
    const candidates = entries
      .map((e) => e.value)
      .filter((e) => e.state === f.state && (!f.before || e.id < f.before))
      .sort((a, b) => (a.id < b.id ? 1 : -1));
    // Entries written before they named their job: read those records to know.
    const unknown = f.job ? candidates.filter((e) => e.job === undefined).map((e) => e.id) : [];
    const jobs = new Map<string, string>();
    if (unknown.length) {
      for (const [id, v] of await this.getMany(unknown)) jobs.set(id, v.value.job);
      keysRead += unknown.length;
    }
    const ids = candidates.filter((e) => !f.job || (e.job ?? jobs.get(e.id)) === f.job).map((e) => e.id);
    return this.page(ids.slice(0, limit + 1), limit, keysRead);
  }

  /** Every record, newest first: the unfiltered list. */
  private async listRecords(f: ListFilter, limit: number): Promise<ListPage> {
    const prefix = this.kv.key('executions', '');
    const q = this.kv.client.getAll();
    const res = await (f.before ? q.inRange({ start: prefix, end: prefix + f.before }) : q.prefix(prefix)).sort('Key', 'Descend').limit(limit + 1).exec();
    const all = res.kvs.map((kv) => JSON.parse(kv.value.toString()) as Execution);
    const executions = all.slice(0, limit);
    return { executions, next: all.length > limit ? executions[executions.length - 1]!.id : '', keysRead: res.kvs.length };
  }

  /**
   * Writes the job and state index entries of records written before those indexes existed,
   * once per etcd prefix (a marker key says it is done); a page of records per transaction.
   */
  async backfillIndexes(log: Logger): Promise<void> {
    const marker = this.kv.key('schema', 'execution-indexes');
    if (await this.kv.get(marker)) return;
    const prefix = this.kv.key('executions', '');
    let start = prefix;
    let done = 0;
    for (;;) {
      const res = await this.kv.client.getAll().inRange({ start, end: prefixEnd(prefix) }).sort('Key', 'Ascend').limit(PER_BACKFILL).exec();
      const ops: IRequestOp[] = [];
      for (const kv of res.kvs) {
        const x = JSON.parse(kv.value.toString()) as Execution;
        ops.push({ request_put: { key: Buffer.from(this.jobIndexKey(x.job, x.id)), value: Buffer.alloc(0) } });
        if (isTerminalExecution(x.state)) ops.push({ request_put: { key: Buffer.from(this.stateIndexKey(x.state, x.id)), value: Buffer.from(x.job) } });
      }
      if (ops.length) await this.kv.client.kv.txn({ success: ops });
      done += res.kvs.length;
      if (res.kvs.length < PER_BACKFILL) break;
      start = res.kvs[res.kvs.length - 1]!.key.toString() + '\0';
    }
    await this.kv.put(marker, { at_ms: Date.now(), executions: done });
    if (done) log.info('indexed executions recorded before the job and state indexes', { executions: done });
  }

  /** How many executions have ended (and are still kept). */
  async countFinished(): Promise<number> {
    const counts = await Promise.all(FINISHED.map((st) => this.kv.client.getAll().prefix(this.kv.key('executions-by-state', st, '')).count()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** The `n` oldest finished executions (by id, so by creation), oldest first. */
  async oldestFinished(n: number): Promise<FinishedEntry[]> {
    const perState = await Promise.all(
      FINISHED.map(async (state) => {
        const prefix = this.kv.key('executions-by-state', state, '');
        const res = await this.kv.client.getAll().prefix(prefix).sort('Key', 'Ascend').limit(n).exec();
        return res.kvs.map((kv) => ({ id: kv.key.toString().slice(prefix.length), job: kv.value.toString(), state }));
      }),
    );
    return perState
      .flat()
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .slice(0, n);
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
    job: x.job,
    state: x.state,
    released_at_ms: released.length ? Math.min(...released) : 0,
    ...(released.length && x.dispatcher ? { dispatcher: x.dispatcher } : {}),
    created_at_ms: x.created_at_ms,
    deadline_ms: x.deadline_ms,
    wait_until_ms: waits.length ? Math.min(...waits) : 0,
    executors: [...executors],
  };
}

/** The first key after every key that starts with `prefix`. */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
