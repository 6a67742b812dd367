// GetLogs: an ordered consumer over grid.log.<execution>.> (or one executor's subject). Without
// follow it ends when it has caught up; with follow it ends once the execution is terminal and
// the last chunk its executors published has been sent (they publish logs before their final
// event, so that last chunk is known the moment the execution is terminal).

import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { DeliverPolicy } from '@nats-io/jetstream';
import { LOG_HEADERS } from '../bus/messages.js';
import { STREAMS, subjects } from '../bus/subjects.js';
import { isTerminalExecution } from '../domain/execution.js';
import { NotFoundError } from '../errors.js';
import type { EtcdExecutionStore } from '../store/etcd-executions.js';
import { authorize, type Principal } from './auth.js';

export interface LogChunkOut {
  executionId: string;
  executorId: string;
  executorName: string;
  stream: string;
  data: Uint8Array;
  seq: number;
  atMs: number;
}

const FOLLOW_CHECK_MS = 300;
/** What the consumer fetches ahead of the gRPC stream, per GetLogs call. */
const READ_AHEAD_BYTES = 8 * 1024 * 1024;

export class LogService {
  constructor(private readonly d: { js: JetStreamClient; store: EtcdExecutionStore }) {}

  async *stream(p: Principal, req: { executionId: string; follow: boolean; executor: string }, signal: AbortSignal): AsyncIterable<LogChunkOut> {
    authorize(p, 'logs:read');
    const x = await this.d.store.mustGet(req.executionId);
    let subject = subjects.logsOf(x.id);
    if (req.executor) {
      const t = x.tasks.find((task) => task.executor_id === req.executor || task.executor_name === req.executor);
      if (!t || !t.executor_id) throw new NotFoundError(`executor of execution ${x.id}`, req.executor, `its executors: ${x.tasks.map((task) => task.executor_name).filter(Boolean).join(', ') || 'none yet'}`);
      subject = subjects.log(x.id, t.executor_id);
    }
    const consumer = await this.d.js.consumers.get(STREAMS.logs, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
    let caughtUp = (await consumer.info()).num_pending === 0;
    let terminal = isTerminalExecution(x.state);
    if (caughtUp && (!req.follow || terminal)) return;

    // Bounded by bytes rather than by count: one executor's message is up to 512 KiB, and a
    // count of them would let one slow reader hold a large share of the log in this process.
    const messages = await consumer.consume({ max_bytes: READ_AHEAD_BYTES });
    const onAbort = () => messages.stop();
    signal.addEventListener('abort', onAbort);
    let timer: NodeJS.Timeout | undefined;
    let lastSeq = 0;
    /** Set once the execution is terminal: the sequence of the last chunk it will ever have. */
    let endSeq: number | undefined;
    if (req.follow && !terminal) {
      const check = async () => {
        const cur = await this.d.store.get(x.id).catch(() => undefined);
        if (!cur || isTerminalExecution(cur.value.state)) {
          // Its executors published every chunk before their final event, so the stream
          // already holds the last one: end once it has been sent (buffered ones included).
          endSeq = await this.lastSequence(cur?.value.tasks.map((t) => t.executor_id) ?? [], x.id, req.executor ? subject : undefined);
          if (lastSeq >= endSeq) return messages.stop();
          return;
        }
        timer = setTimeout(() => void check(), FOLLOW_CHECK_MS);
      };
      timer = setTimeout(() => void check(), FOLLOW_CHECK_MS);
    }
    try {
      for await (const m of messages) {
        yield toChunk(x.id, m);
        lastSeq = m.seq;
        caughtUp = m.info.pending === 0;
        if (endSeq !== undefined && lastSeq >= endSeq) break;
        if (caughtUp && (!req.follow || terminal)) break;
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      messages.stop();
    }
  }

  /** The stream sequence of the last log chunk of these executors for the execution (0 = none). */
  private async lastSequence(executorIds: string[], executionId: string, onlySubject?: string): Promise<number> {
    const jsm = await this.jsm();
    const subjectsToCheck = onlySubject ? [onlySubject] : [...new Set(executorIds.filter(Boolean))].map((id) => subjects.log(executionId, id));
    let last = 0;
    for (const s of subjectsToCheck) {
      const m = await jsm.streams.getMessage(STREAMS.logs, { last_by_subj: s }).catch(() => null);
      if (m && m.seq > last) last = m.seq;
    }
    return last;
  }

  private jsmPromise?: Promise<JetStreamManager>;
  private jsm(): Promise<JetStreamManager> {
    this.jsmPromise ??= this.d.js.jetstreamManager();
    return this.jsmPromise;
  }
}

function toChunk(executionId: string, m: JsMsg): LogChunkOut {
  const executorId = m.subject.slice(m.subject.lastIndexOf('.') + 1);
  return {
    executionId,
    executorId,
    executorName: m.headers?.get(LOG_HEADERS.executorName) ?? executorId,
    stream: m.headers?.get(LOG_HEADERS.stream) || 'stdout',
    data: m.data,
    seq: m.seq,
    atMs: Math.floor(Number(m.info.timestampNanos) / 1e6),
  };
}
