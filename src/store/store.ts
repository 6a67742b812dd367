// The controller's state of record, in domain verbs: what the use-cases ask of it. The etcd
// implementations (etcd-*.ts) own their connection; the in-memory ones (memory.ts) serve unit
// tests. Use-cases depend only on these interfaces.

import { EXECUTION_STATES, type Execution, type ExecutionState } from '../domain/execution.js';
import type { ExecutorRecord } from '../domain/executor.js';
import type { JobDefinition, StoredJob } from '../domain/job.js';

/** A value and the revision it was read at, the token for compare-and-swap. */
export interface Versioned<T> {
  value: T;
  revision: number;
}

// ---- job definitions ----

export interface JobStore {
  /** Stores a new definition at version 1; AlreadyExistsError if the name is taken. */
  createJob(def: JobDefinition, by: string): Promise<StoredJob>;
  /**
   * Replaces a definition by compare-and-swap, bumping its version. With `expectedVersion`
   * the replace only happens if the stored version is that one (ConflictError otherwise).
   * NotFoundError if there is none.
   */
  replaceJob(def: JobDefinition, by: string, expectedVersion?: number): Promise<StoredJob>;
  getJob(name: string): Promise<StoredJob>;
  /** The definition as it was at `version`; NotFoundError if the job was deleted since. */
  getVersion(name: string, version: number): Promise<StoredJob>;
  /** By name. */
  listJobs(): Promise<StoredJob[]>;
  deleteJob(name: string): Promise<void>;
}

// ---- executions ----

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
  /** Keys read from the store to answer (index entries and records). */
  keysRead: number;
}

/** How many executions are in each state, as the dashboard shows them beside its filters. */
export interface StateCounts {
  /** Every state, 0 when none. */
  counts: Record<ExecutionState, number>;
  /** States whose counting stopped at the scan limit: there are at least that many. */
  atLeast: ExecutionState[];
}

/** Counts of 0 in every state. */
export function noCounts(): Record<ExecutionState, number> {
  return Object.fromEntries(EXECUTION_STATES.map((s) => [s, 0])) as Record<ExecutionState, number>;
}

/** A finished execution, as its state index entry names it. */
export interface FinishedEntry {
  id: string;
  job: string;
  state: ExecutionState;
}

/** What pruning of finished executions has done so far: the newest one it deleted was created at `pruned_before_ms`. */
export interface RetentionStatus {
  pruned_before_ms: number;
  deleted_total: number;
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

export interface ExecutionStore {
  /**
   * Records a new execution; with an idempotency claim, only if that key is free, in the same
   * write (a check before it would let two concurrent retries both create one). A record too
   * large to store is refused (LimitExceededError).
   */
  create(x: Execution, claim?: IdempotencyClaim): Promise<CreateResult>;
  /** The execution an idempotency key started, while the key lasts (24 h). */
  idempotencyEntry(requester: string, keyHash: string): Promise<IdempotencyEntry | undefined>;
  get(id: string): Promise<Versioned<Execution> | undefined>;
  /** get() for callers that only look: the copy may be shared with others and must not be changed. */
  getShared(id: string): Promise<Versioned<Execution> | undefined>;
  /**
   * The record as this store last wrote it, with its revision, if it still holds it: no read.
   * Another writer may have changed it since; only a write guarded by that revision proves it
   * current. A shared copy: it must not be changed.
   */
  ownCopy(id: string): Versioned<Execution> | undefined;
  /** NotFoundError when there is none. */
  mustGet(id: string): Promise<Execution>;
  /**
   * Read-modify-write by compare-and-swap, retried on conflict. `fn` mutates the copy it is
   * given and returns whether it changed anything; nothing is written when it did not.
   */
  update(id: string, fn: (x: Execution) => boolean): Promise<UpdateResult>;
  /**
   * update() of many at once (group commit); executions that do not exist are missing from the
   * result. `mayChange`, when given, looks at each record first, as it is (a shared copy, not to
   * be changed): where it says false, `fn` would change nothing, so the record is neither copied
   * nor given to `fn` (a big fan-out's record is costly to copy for claims that change nothing).
   */
  updateMany(ids: string[], fn: (x: Execution) => boolean, mayChange?: (x: Execution) => boolean): Promise<Map<string, UpdateResult>>;
  /** Newest first (ids are time-ordered), filtered, at most `limit`, from `before` on. */
  list(f: ListFilter): Promise<ListPage>;
  /** The executions not yet terminal. */
  active(): Promise<ActiveEntry[]>;
  /**
   * The record as it changes after `afterRevision`, until the caller stops reading or `signal`
   * aborts. A reader slower than the changes gets the newest version, not every one in between.
   */
  changes(id: string, afterRevision: number, signal: AbortSignal): AsyncIterable<Execution>;
  /** How many executions have ended (and are still kept). */
  countFinished(): Promise<number>;
  /**
   * Executions per state, of one job when given. Without a job it reads counts, not keys; with
   * one, a finished state's index entries are read (they name the job), at most `maxScan` each.
   */
  countByState(f: { job?: string; maxScan: number }): Promise<StateCounts>;
  /** The `n` oldest finished executions, oldest first. */
  oldestFinished(n: number): Promise<FinishedEntry[]>;
  /** Deletes finished executions still in the state their entry names; returns how many. */
  deleteFinished(entries: FinishedEntry[]): Promise<number>;
  retentionStatus(): Promise<RetentionStatus>;
  /** Adds a round of pruning to the status: `deleted` executions, the newest created at `newestMs`. */
  recordPruned(newestMs: number, deleted: number): Promise<void>;
}

// ---- executors ----

export interface AliveWatch {
  close(): Promise<void>;
}

/**
 * The executor registry. An executor is alive while its alive entry exists; the entry is bound
 * to a lease (LeaseStore) the controller keeps alive on its heartbeats, and lapses with it.
 */
export interface ExecutorStore {
  /** Creates the record and claims its name together; AlreadyExistsError if the name is taken. */
  create(rec: ExecutorRecord): Promise<void>;
  get(id: string): Promise<ExecutorRecord | undefined>;
  /** get(), from memory where the store keeps a copy (heartbeats, dispatch, BeginTask). */
  getFast(id: string): Promise<ExecutorRecord | undefined>;
  /** Every record, from memory where the store keeps a copy. */
  all(): Promise<ExecutorRecord[]>;
  /**
   * The ids of the executors live now (isLive), from memory where the store keeps a copy: there
   * one set is built per change of the registry, not per call (claims ask for it per batch). A
   * shared set: not to be changed.
   */
  liveIds(): Promise<ReadonlySet<string>>;
  /** By id, or else by name; NotFoundError names what was asked for. */
  find(idOrName: string): Promise<ExecutorRecord>;
  /** Every record, read now, and the revision it was read at (for watchAlive). */
  list(): Promise<{ executors: ExecutorRecord[]; revision: number }>;
  /** Compare-and-swap update; `fn` returns undefined to leave the record alone. Undefined when there is no record. */
  update(id: string, fn: (cur: ExecutorRecord) => ExecutorRecord | undefined): Promise<ExecutorRecord | undefined>;
  /** Deletes the record, its name and its alive entry, and remembers that it was removed. */
  remove(rec: ExecutorRecord): Promise<void>;
  wasRemoved(id: string): Promise<boolean>;
  /** Binds the executor's alive entry to the lease. */
  putAlive(id: string, leaseId: string): Promise<void>;
  isAlive(id: string): Promise<boolean>;
  /**
   * Calls `onDeleted(id)` for each alive entry deleted after `fromRevision` (lease lapsed,
   * revoked, or removal); `onMissed()` when deletions may have been missed (a watch read afresh).
   */
  watchAlive(fromRevision: number, onDeleted: (id: string, revision: number) => void, onMissed: () => void): Promise<AliveWatch>;
  /**
   * Marks the executor EXPIRED if it is still live and still has no alive entry, both checked
   * in the write, so a heartbeat that took a lease meanwhile wins. The record as written, or
   * undefined when it was not expired.
   */
  expire(id: string, at: number): Promise<ExecutorRecord | undefined>;
}

/** Leases: what keeps an executor's alive entry (and a lock's place) for as long as it is renewed. */
export interface LeaseStore {
  grant(ttlSeconds: number): Promise<string>;
  /** Refreshes the lease; resolves to its TTL in seconds, or 0 if it no longer exists. */
  keepAlive(id: string): Promise<number>;
  /** Ends the lease and what is bound to it; one that is gone already is no error. */
  revoke(id: string): Promise<void>;
}
