// The state of record in memory, for unit tests of the use-cases: the same interfaces as the
// etcd stores (store.ts), each operation atomic, every read a copy. Not kept: sizes (nothing is
// too large to store here), and time (a lease lapses only when a test says so, with lapse()).

import type { Execution } from '../domain/execution.js';
import { isTerminalExecution } from '../domain/execution.js';
import { isLive, type ExecutorRecord } from '../domain/executor.js';
import type { JobDefinition, StoredJob } from '../domain/job.js';
import { AlreadyExistsError, ConflictError, NotFoundError } from '../errors.js';
import { deepFreeze } from '../util/deep-freeze.js';
import {
  activeEntry,
  type ActiveEntry,
  type AliveWatch,
  type CreateResult,
  type ExecutionStore,
  type ExecutorStore,
  type FinishedEntry,
  type IdempotencyClaim,
  type IdempotencyEntry,
  type JobStore,
  type LeaseStore,
  type ListFilter,
  type ListPage,
  noCounts,
  type RetentionStatus,
  type StateCounts,
  type UpdateResult,
  type Versioned,
} from './store.js';

/** A copy of a value, so that no caller shares what the store holds. */
function copy<T>(v: T): T {
  return structuredClone(v);
}

export class MemoryJobStore implements JobStore {
  private readonly jobs = new Map<string, StoredJob>();
  /** Every version stored, by `<name> <version>`. */
  private readonly versions = new Map<string, StoredJob>();

  constructor(private readonly now: () => number = Date.now) {}

  private put(job: StoredJob): StoredJob {
    this.jobs.set(job.definition.name, job);
    this.versions.set(`${job.definition.name} ${job.version}`, job);
    return copy(job);
  }

  async createJob(def: JobDefinition, by: string): Promise<StoredJob> {
    if (this.jobs.has(def.name)) throw new AlreadyExistsError('job', def.name, 'use --replace to update it');
    const at = this.now();
    return this.put({ definition: copy(def), version: 1, created_by: by, created_at_ms: at, updated_by: by, updated_at_ms: at });
  }

  async replaceJob(def: JobDefinition, by: string, expectedVersion?: number): Promise<StoredJob> {
    const cur = this.jobs.get(def.name);
    if (!cur) throw new NotFoundError('job', def.name, 'create it first, without --replace');
    if (expectedVersion && cur.version !== expectedVersion) {
      throw new ConflictError('job', def.name, `expected version ${expectedVersion}, stored version is ${cur.version}`);
    }
    return this.put({ ...cur, definition: copy(def), version: cur.version + 1, updated_by: by, updated_at_ms: this.now() });
  }

  async getJob(name: string): Promise<StoredJob> {
    const job = this.jobs.get(name);
    if (!job) throw new NotFoundError('job', name, 'grid-cli list shows the jobs there are');
    return copy(job);
  }

  async getVersion(name: string, version: number): Promise<StoredJob> {
    const job = this.versions.get(`${name} ${version}`);
    if (!job) throw new NotFoundError('job version', `${name} version ${version}`, 'the job was deleted or replaced before this version was kept');
    return copy(job);
  }

  async listJobs(): Promise<StoredJob[]> {
    return [...this.jobs.values()].map(copy).sort((a, b) => a.definition.name.localeCompare(b.definition.name));
  }

  async deleteJob(name: string): Promise<void> {
    if (!this.jobs.delete(name)) throw new NotFoundError('job', name);
    for (const k of this.versions.keys()) if (k.startsWith(`${name} `)) this.versions.delete(k);
  }
}

export class MemoryExecutionStore implements ExecutionStore {
  private revision = 0;
  private readonly records = new Map<string, Versioned<Execution>>();
  /** Idempotency entries by `<requester> <key hash>` (they do not lapse here). */
  private readonly keys = new Map<string, IdempotencyEntry>();
  /** Called with the id of each execution written. */
  private readonly written = new Set<(id: string) => void>();

  /** `onWritten`: as EtcdExecutionStore's, told of each record written with the version it replaced. */
  constructor(private readonly o: { onWritten?: (prev: Execution | undefined, next: Execution) => void } = {}) {}

  private write(x: Execution): void {
    const prev = this.records.get(x.id)?.value;
    this.records.set(x.id, { value: copy(x), revision: ++this.revision });
    this.o.onWritten?.(prev && copy(prev), copy(x));
    for (const fn of this.written) fn(x.id);
  }

  async create(x: Execution, claim?: IdempotencyClaim): Promise<CreateResult> {
    const key = claim && `${claim.requester} ${claim.keyHash}`;
    const existing = key ? this.keys.get(key) : undefined;
    if (existing) return { created: false, existing: copy(existing) };
    if (this.records.has(x.id)) throw new ConflictError('execution', x.id, 'an execution with this id exists already');
    this.write(x);
    if (key) this.keys.set(key, { execution_id: x.id, digest: claim!.digest, created_at_ms: x.created_at_ms });
    return { created: true };
  }

  async idempotencyEntry(requester: string, keyHash: string): Promise<IdempotencyEntry | undefined> {
    const e = this.keys.get(`${requester} ${keyHash}`);
    return e && copy(e);
  }

  async get(id: string): Promise<Versioned<Execution> | undefined> {
    const cur = this.records.get(id);
    return cur && copy(cur);
  }

  getShared(id: string): Promise<Versioned<Execution> | undefined> {
    return this.get(id);
  }

  /** Every record here is this store's own last write of it. */
  ownCopy(id: string): Versioned<Execution> | undefined {
    const cur = this.records.get(id);
    return cur && copy(cur);
  }

  async mustGet(id: string): Promise<Execution> {
    const cur = this.records.get(id);
    if (!cur) throw new NotFoundError('execution', id, 'grid-cli executions list shows recent ones');
    return copy(cur.value);
  }

  async update(id: string, fn: (x: Execution) => boolean): Promise<UpdateResult> {
    const cur = this.records.get(id);
    if (!cur) throw new NotFoundError('execution', id);
    const next = copy(cur.value);
    if (!fn(next)) return { execution: copy(cur.value), changed: false };
    this.write(next);
    return { execution: copy(next), changed: true };
  }

  async updateMany(ids: string[], fn: (x: Execution) => boolean, mayChange?: (x: Execution) => boolean): Promise<Map<string, UpdateResult>> {
    const out = new Map<string, UpdateResult>();
    for (const id of new Set(ids)) {
      const cur = this.records.get(id);
      if (!cur) continue;
      // The look is given a frozen copy: a `mayChange` that changes what it looks at throws here.
      if (mayChange && !mayChange(deepFreeze(copy(cur.value)))) out.set(id, { execution: copy(cur.value), changed: false });
      else out.set(id, await this.update(id, fn));
    }
    return out;
  }

  async list(f: ListFilter): Promise<ListPage> {
    const limit = Math.max(1, f.limit);
    const all = [...this.records.values()].map((v) => v.value);
    const ids = all
      .filter((x) => (!f.job || x.job === f.job) && (!f.state || x.state === f.state) && (!f.before || x.id < f.before))
      .sort((a, b) => (a.id < b.id ? 1 : -1));
    const executions = ids.slice(0, limit).map(copy);
    return { executions, next: ids.length > limit ? executions[executions.length - 1]!.id : '', keysRead: all.length };
  }

  async active(): Promise<ActiveEntry[]> {
    return [...this.records.values()].filter((v) => !isTerminalExecution(v.value.state)).map((v) => activeEntry(v.value));
  }

  async *changes(id: string, afterRevision: number, signal: AbortSignal): AsyncIterable<Execution> {
    let sent = afterRevision;
    let wake: (() => void) | undefined;
    const onWrite = (written: string) => {
      if (written === id) wake?.();
    };
    const onAbort = () => wake?.();
    this.written.add(onWrite);
    signal.addEventListener('abort', onAbort);
    try {
      while (!signal.aborted) {
        const cur = this.records.get(id);
        if (cur && cur.revision > sent) {
          sent = cur.revision;
          yield copy(cur.value);
          continue;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      this.written.delete(onWrite);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private finished(): FinishedEntry[] {
    return [...this.records.values()]
      .map((v) => v.value)
      .filter((x) => isTerminalExecution(x.state))
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((x) => ({ id: x.id, job: x.job, state: x.state }));
  }

  async countFinished(): Promise<number> {
    return this.finished().length;
  }

  async countByState(f: { job?: string; maxScan: number }): Promise<StateCounts> {
    const counts = noCounts();
    for (const { value: x } of this.records.values()) if (!f.job || x.job === f.job) counts[x.state]++;
    return { counts, atLeast: [] };
  }

  async oldestFinished(n: number): Promise<FinishedEntry[]> {
    return this.finished().slice(0, n);
  }

  private pruned: RetentionStatus = { pruned_before_ms: 0, deleted_total: 0 };

  async retentionStatus(): Promise<RetentionStatus> {
    return { ...this.pruned };
  }

  async recordPruned(newestMs: number, deleted: number): Promise<void> {
    this.pruned = { pruned_before_ms: Math.max(this.pruned.pruned_before_ms, newestMs), deleted_total: this.pruned.deleted_total + deleted };
  }

  async deleteFinished(entries: FinishedEntry[]): Promise<number> {
    let deleted = 0;
    for (const e of entries) {
      if (this.records.get(e.id)?.value.state !== e.state) continue;
      this.records.delete(e.id);
      deleted++;
    }
    return deleted;
  }
}

/** Leases that last until revoked, or until a test lets one lapse (lapse()). */
export class MemoryLeases implements LeaseStore {
  private last = 0;
  /** TTL in seconds, by lease id. */
  private readonly leases = new Map<string, number>();
  private readonly ended = new Set<(leaseId: string) => void>();

  async grant(ttlSeconds: number): Promise<string> {
    const id = `lease-${++this.last}`;
    this.leases.set(id, ttlSeconds);
    return id;
  }

  async keepAlive(id: string): Promise<number> {
    return this.leases.get(id) ?? 0;
  }

  async revoke(id: string): Promise<void> {
    this.end(id);
  }

  /** The lease runs out, as it does when its holder stops renewing it; what is bound to it goes. */
  lapse(id: string): void {
    this.end(id);
  }

  has(id: string): boolean {
    return this.leases.has(id);
  }

  /** Calls `fn` with each lease that ends (revoked or lapsed), for what is bound to it. */
  onEnded(fn: (leaseId: string) => void): void {
    this.ended.add(fn);
  }

  private end(id: string): void {
    if (!this.leases.delete(id)) return;
    for (const fn of this.ended) fn(id);
  }
}

export class MemoryExecutorStore implements ExecutorStore {
  private revision = 0;
  private readonly records = new Map<string, ExecutorRecord>();
  private readonly names = new Map<string, string>();
  /** Alive entries: executor id → the lease they are bound to. */
  private readonly alive = new Map<string, string>();
  private readonly removed = new Set<string>();
  private readonly aliveWatches = new Set<(id: string, revision: number) => void>();

  constructor(private readonly leases: MemoryLeases = new MemoryLeases()) {
    leases.onEnded((leaseId) => {
      for (const [id, bound] of this.alive) if (bound === leaseId) this.deleteAlive(id);
    });
  }

  private deleteAlive(id: string): void {
    if (!this.alive.delete(id)) return;
    const revision = ++this.revision;
    for (const fn of this.aliveWatches) fn(id, revision);
  }

  async create(rec: ExecutorRecord): Promise<void> {
    if (this.names.has(rec.name) || this.records.has(rec.id)) throw new AlreadyExistsError('executor', rec.name, 'register with --replace to take the name over');
    this.names.set(rec.name, rec.id);
    this.records.set(rec.id, copy(rec));
    this.revision++;
  }

  async get(id: string): Promise<ExecutorRecord | undefined> {
    const rec = this.records.get(id);
    return rec && copy(rec);
  }

  getFast(id: string): Promise<ExecutorRecord | undefined> {
    return this.get(id);
  }

  async all(): Promise<ExecutorRecord[]> {
    return [...this.records.values()].map(copy);
  }

  async liveIds(): Promise<ReadonlySet<string>> {
    return new Set([...this.records.values()].filter((x) => isLive(x.state)).map((x) => x.id));
  }

  async find(idOrName: string): Promise<ExecutorRecord> {
    const rec = this.records.get(idOrName) ?? this.records.get(this.names.get(idOrName) ?? '');
    if (!rec) throw new NotFoundError('executor', idOrName, 'grid-cli executors list shows them');
    return copy(rec);
  }

  async list(): Promise<{ executors: ExecutorRecord[]; revision: number }> {
    return { executors: await this.all(), revision: this.revision };
  }

  async update(id: string, fn: (cur: ExecutorRecord) => ExecutorRecord | undefined): Promise<ExecutorRecord | undefined> {
    const cur = this.records.get(id);
    if (!cur) return undefined;
    const next = fn(copy(cur));
    if (next === undefined) return copy(cur);
    this.records.set(id, copy(next));
    this.revision++;
    return copy(next);
  }

  async remove(rec: ExecutorRecord): Promise<void> {
    this.records.delete(rec.id);
    if (this.names.get(rec.name) === rec.id) this.names.delete(rec.name);
    this.deleteAlive(rec.id);
    this.removed.add(rec.id);
    this.revision++;
  }

  async wasRemoved(id: string): Promise<boolean> {
    return this.removed.has(id);
  }

  async putAlive(id: string, leaseId: string): Promise<void> {
    if (!this.leases.has(leaseId)) throw new NotFoundError('lease', leaseId);
    this.alive.set(id, leaseId);
    this.revision++;
  }

  async isAlive(id: string): Promise<boolean> {
    return this.alive.has(id);
  }

  async watchAlive(fromRevision: number, onDeleted: (id: string, revision: number) => void, _onMissed: () => void): Promise<AliveWatch> {
    const fn = (id: string, revision: number) => {
      if (revision > fromRevision) onDeleted(id, revision);
    };
    this.aliveWatches.add(fn);
    return { close: async () => void this.aliveWatches.delete(fn) };
  }

  async expire(id: string, at: number): Promise<ExecutorRecord | undefined> {
    const cur = this.records.get(id);
    if (!cur || !isLive(cur.state) || this.alive.has(id)) return undefined;
    const next: ExecutorRecord = { ...cur, state: 'EXPIRED', lease_id: '', state_changed_at_ms: at };
    this.records.set(id, next);
    this.revision++;
    return copy(next);
  }
}
