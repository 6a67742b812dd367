// The execution store's indexes, read: lists by job or by state, counts, the oldest finished
// executions for retention, and retention's own status. Each reads index entries
// (executions-by-job/, executions-by-state/, executions-active/) and only then the records it
// shows, through the store's reads. Written by EtcdExecutionStore, in the same transaction as
// the records they index (see etcd-executions.ts).

import type { IRequestOp } from 'etcd3';
import { isTerminalExecution, type Execution, type ExecutionState } from '../domain/execution.js';
import type { Logger } from '../util/log.js';
import { decodeExecution } from './execution-codec.js';
import type { Kv } from './kv.js';
import { type ActiveEntry, type FinishedEntry, type ListFilter, type ListPage, noCounts, type RetentionStatus, type StateCounts, type Versioned } from './store.js';

/** etcd's default limit of operations in one transaction. */
export const TXN_OPS = 128;
/** Records per backfill transaction (two index writes each at most). */
const PER_BACKFILL = Math.floor(TXN_OPS / 2);
/** The states an execution ends in: those with an executions-by-state index. */
const FINISHED: readonly ExecutionState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
/** Index entries read at once when counting one job's finished executions. */
const COUNT_PAGE = 1000;

export class ExecutionIndexes {
  constructor(
    private readonly kv: Kv,
    private readonly keys: { jobIndexKey(job: string, id: string): string; stateIndexKey(state: ExecutionState, id: string): string },
    /** The store's read of many records (shown in a page, or read to learn their job). */
    private readonly read: (ids: string[]) => Promise<Map<string, Versioned<Execution>>>,
  ) {}

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
    // One more than shown says whether a next page exists; a job within a state skips entries,
    // so it reads larger pages.
    const page = f.state && f.job ? Math.min(Math.max(limit + 1, 100), 1000) : limit + 1;
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
    const found = await this.read(shown);
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
      for (const [id, v] of await this.read(unknown)) jobs.set(id, v.value.job);
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
    const all = res.kvs.map((kv) => decodeExecution(kv.value));
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
        const x = decodeExecution(kv.value);
        ops.push({ request_put: { key: Buffer.from(this.keys.jobIndexKey(x.job, x.id)), value: Buffer.alloc(0) } });
        if (isTerminalExecution(x.state)) ops.push({ request_put: { key: Buffer.from(this.keys.stateIndexKey(x.state, x.id)), value: Buffer.from(x.job) } });
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

  async countByState(f: { job?: string; maxScan: number }): Promise<StateCounts> {
    const counts = noCounts();
    const atLeast: ExecutionState[] = [];
    // Unfinished ones from the active entries, few by nature.
    const active = await this.active();
    const unknown = f.job ? active.filter((e) => e.job === undefined).map((e) => e.id) : [];
    const jobs = new Map<string, string>();
    if (unknown.length) for (const [id, v] of await this.read(unknown)) jobs.set(id, v.value.job);
    for (const e of active) if (!f.job || (e.job ?? jobs.get(e.id)) === f.job) counts[e.state]++;
    await Promise.all(
      FINISHED.map(async (state) => {
        const prefix = this.kv.key('executions-by-state', state, '');
        if (!f.job) {
          counts[state] = await this.kv.client.getAll().prefix(prefix).count();
          return;
        }
        // The entries name their job: read them in pages, up to maxScan.
        let start = prefix;
        let scanned = 0;
        for (;;) {
          const page = Math.min(COUNT_PAGE, f.maxScan - scanned);
          const res = await this.kv.client.getAll().inRange({ start, end: prefixEnd(prefix) }).sort('Key', 'Ascend').limit(page).exec();
          scanned += res.kvs.length;
          for (const kv of res.kvs) if (kv.value.toString() === f.job) counts[state]++;
          if (res.kvs.length < page) return;
          if (scanned >= f.maxScan) {
            atLeast.push(state);
            return;
          }
          start = res.kvs[res.kvs.length - 1]!.key.toString() + '\0';
        }
      }),
    );
    return { counts, atLeast: FINISHED.filter((s) => atLeast.includes(s)) };
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

  private retentionKey(): string {
    return this.kv.key('retention', 'status');
  }

  async retentionStatus(): Promise<RetentionStatus> {
    return (await this.kv.get<RetentionStatus>(this.retentionKey()))?.value ?? { pruned_before_ms: 0, deleted_total: 0 };
  }

  async recordPruned(newestMs: number, deleted: number): Promise<void> {
    await this.kv.update<RetentionStatus>(
      this.retentionKey(),
      (cur) => ({ pruned_before_ms: Math.max(cur?.pruned_before_ms ?? 0, newestMs), deleted_total: (cur?.deleted_total ?? 0) + deleted }),
      'retention status',
    );
  }

  async active(): Promise<ActiveEntry[]> {
    const all = await this.kv.list<ActiveEntry>(this.kv.key('executions-active', ''));
    return all.map((e) => e.value);
  }
}

/** The first key after every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
