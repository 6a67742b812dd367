// GetLogs: an execution's log (or one executor's part of it) as the bus holds it. Without
// follow it ends when it has caught up; with follow it ends once the execution is terminal and
// the last chunk its executors published has been sent (they publish logs before their final
// event, so that last chunk is known the moment the execution is terminal). Small messages that
// have already arrived behind one another (a task printing a line now and then, read back later)
// go out as one chunk per executor and stream: each gRPC message costs far more than its bytes.

import { setImmediate } from 'node:timers/promises';
import type { LogMessage, LogSource } from '../bus/bus.js';
import { isTerminalExecution, type Execution } from '../domain/execution.js';
import { groupsOf } from '../domain/executor.js';
import type { ExecutionStore, ExecutorStore } from '../store/store.js';
import type { Logger } from '../util/log.js';
import { NotFoundError } from '../errors.js';
import { authorize, type Principal } from './auth.js';
import { checkLogSelection, LogLineSelector, type LogSelection } from './log-lines.js';
import type { StreamQuota } from './stream-quota.js';

/** One or more log messages of one executor and stream; `seq` and `atMs` are those of the last. */
export type LogChunkOut = Omit<LogMessage, 'pending'> & { executionId: string };

export interface LogRequest extends LogSelection {
  executionId: string;
  follow: boolean;
  /** Only this executor's output (its id or name); "" = every executor's. */
  executor: string;
  /** Resume: only chunks after this log position (a chunk's `seq`); 0 = from the start. */
  afterSeq?: number;
  /** Called once the caller is authorized and the log is open, before the first chunk is waited for. */
  onReady?: () => void;
}

const FOLLOW_CHECK_MS = 300;
/**
 * Messages the consumer fetches ahead of the gRPC stream, per GetLogs call: what a reader slower
 * than the stream makes this process hold, at most 32 MiB of executors' 512 KiB messages. Fewer
 * make a log of many small messages slower to read back (one pull request per few messages).
 * Counted, not bounded by bytes: with max_bytes, a message that does not fit what is left of a
 * pull stalls this client's consumer until two heartbeats are missed.
 */
const READ_AHEAD_MESSAGES = 64;
/** Messages smaller than this are joined with the ones already waiting behind them, up to this size. */
const JOIN_BYTES = 64 * 1024;

export class LogService {
  constructor(
    private readonly d: {
      logs: LogSource;
      store: Pick<ExecutionStore, 'get' | 'mustGet'>;
      /** Who is in which group: a pool task's output counts from members of its pool. */
      executors?: Pick<ExecutorStore, 'getFast'>;
      log?: Logger;
      /** Refuses an execution outside a scoped token's groups. */
      authorizeVisible?: (p: Principal, x: Execution, what: string) => Promise<void>;
      /** Open streams per token, shared with WatchExecution; absent = not counted. */
      streams?: StreamQuota;
    },
  ) {}

  /**
   * Whether output under `executorId` belongs to the execution: an executor may publish logs
   * only under its own id, but for any execution, so output from one that was never given a task
   * of it (nor is in the pool of one of its pool tasks) is left out.
   */
  private writers(x: Execution): (executorId: string) => Promise<boolean> {
    const known = new Map<string, boolean>(x.tasks.filter((t) => t.executor_id).map((t) => [t.executor_id, true]));
    const pools = [...new Set(x.tasks.map((t) => t.pool).filter((g): g is string => !!g))];
    return async (id) => {
      const seen = known.get(id);
      if (seen !== undefined) return seen;
      let ok = false;
      const cur = (await this.d.store.get(x.id).catch(() => undefined))?.value;
      if (cur?.tasks.some((t) => t.executor_id === id)) ok = true;
      else if (pools.length && this.d.executors) {
        const e = await this.d.executors.getFast(id);
        ok = !!e && groupsOf(e).some((g) => pools.includes(g));
      }
      if (!ok) this.d.log?.warn('log output from an executor with no task of this execution left out', { execution: x.id, executor: id });
      known.set(id, ok);
      return ok;
    };
  }

  stream(p: Principal, req: LogRequest, signal: AbortSignal): AsyncIterable<LogChunkOut> {
    const run = () => this.read(p, req, signal);
    return this.d.streams?.hold(p, run) ?? run();
  }

  private async *read(p: Principal, req: LogRequest, signal: AbortSignal): AsyncIterable<LogChunkOut> {
    authorize(p, 'logs:read');
    checkLogSelection(req);
    const x = await this.d.store.mustGet(req.executionId);
    await this.d.authorizeVisible?.(p, x, 'read the logs of');
    let only: string | undefined;
    if (req.executor) {
      const t = x.tasks.find((task) => task.executor_id === req.executor || task.executor_name === req.executor);
      if (!t || !t.executor_id) throw new NotFoundError(`executor of execution ${x.id}`, req.executor, `its executors: ${x.tasks.map((task) => task.executor_name).filter(Boolean).join(', ') || 'none yet'}`);
      only = t.executor_id;
    }
    const afterSeq = req.afterSeq ?? 0;
    const log = await this.d.logs.openLog(x.id, only, afterSeq, req.sinceMs ?? 0);
    let caughtUp = log.pending === 0;
    const selector = new LogLineSelector(req, !caughtUp);
    /**
     * Messages of what the log held when it was opened still to be read: the selection's backlog.
     * What arrives later (a followed log's new lines) is not cut by a tail, so chunks are not
     * joined across this line.
     */
    let backlog = log.pending;
    req.onReady?.();
    let terminal = isTerminalExecution(x.state);
    if (caughtUp && (!req.follow || terminal)) return;

    const messages = await log.read({ readAhead: READ_AHEAD_MESSAGES });
    const onAbort = () => messages.stop();
    signal.addEventListener('abort', onAbort);
    let timer: NodeJS.Timeout | undefined;
    let lastSeq = afterSeq;
    /** Set once the execution is terminal: the sequence of the last chunk it will ever have. */
    let endSeq: number | undefined;
    if (req.follow && !terminal) {
      const check = async () => {
        const cur = await this.d.store.get(x.id).catch(() => undefined);
        if (!cur || isTerminalExecution(cur.value.state)) {
          // Its executors published every chunk before their final event, so the stream
          // already holds the last one: end once it has been sent (buffered ones included).
          endSeq = await this.d.logs.lastLogSequence(x.id, only ? [only] : (cur?.value.tasks.map((t) => t.executor_id) ?? []));
          if (lastSeq >= endSeq) return messages.stop();
          return;
        }
        timer = setTimeout(() => void check(), FOLLOW_CHECK_MS);
      };
      timer = setTimeout(() => void check(), FOLLOW_CHECK_MS);
    }
    const mayWrite = this.writers(x);
    const it = messages[Symbol.asyncIterator]();
    /** The consumer's next result when already asked for (while joining): taken before asking again. */
    let ahead: Promise<IteratorResult<LogMessage>> | undefined;
    try {
      for (;;) {
        const r = await (ahead ?? it.next());
        ahead = undefined;
        if (r.done) break;
        let m = r.value;
        backlog--;
        const chunk = toChunk(x.id, m);
        if (!(await mayWrite(chunk.executorId))) {
          lastSeq = m.seq;
          caughtUp = m.pending === 0;
          if (backlog <= 0) yield* selector.endBacklog();
          if (endSeq !== undefined && lastSeq >= endSeq) break;
          if (caughtUp && (!req.follow || terminal)) break;
          continue;
        }
        // Join the small messages that have already arrived behind it. getPending() may count
        // more than is there (never less), so each is waited for one turn of the event loop at
        // most; one that is not there by then starts the next chunk.
        if (m.data.length < JOIN_BYTES) {
          const parts = [m.data];
          let size = m.data.length;
          while (size < JOIN_BYTES && messages.readAhead() > 0 && backlog !== 0) {
            const p = it.next();
            const n = await Promise.race([p, setImmediate()]);
            if (!n || n.done || n.value.executorId !== m.executorId || n.value.data.length >= JOIN_BYTES || n.value.stream !== chunk.stream) {
              ahead = p;
              break;
            }
            parts.push(n.value.data);
            size += n.value.data.length;
            m = n.value;
            backlog--;
          }
          if (parts.length > 1) {
            chunk.data = Buffer.concat(parts, size);
            chunk.seq = m.seq;
            chunk.atMs = m.atMs;
          }
        }
        yield* selector.take(chunk);
        if (backlog <= 0) yield* selector.endBacklog();
        lastSeq = m.seq;
        caughtUp = m.pending === 0;
        if (endSeq !== undefined && lastSeq >= endSeq) break;
        if (caughtUp && (!req.follow || terminal)) break;
      }
      // Stopped before the backlog was read to its end: what it kept is still the tail.
      yield* selector.endBacklog();
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      messages.stop();
      // A result asked for ahead and not taken is dropped with the stream (and may be an error).
      ahead?.catch(() => {});
      // Ends the consumer's iterator too, as leaving a for-await would.
      await it.return?.();
    }
  }
}

function toChunk(executionId: string, m: LogMessage): LogChunkOut {
  const { pending: _p, ...chunk } = m;
  return { executionId, ...chunk };
}
