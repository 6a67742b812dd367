// The controller's Prometheus metrics (served at /metrics by the HTTP door). One prom-client
// Registry per ControllerMetrics, never the library's global one, so a test can build several.
// Fed through narrow hooks: the execution store reports each record it wrote with the version it
// replaced (recordWritten), the registry each heartbeat, readiness each backend probe. Each
// process counts what it did itself — sum the counters over replicas for the fleet. Labels are
// job names and states, never execution or executor ids.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { isTerminalExecution, isTerminalTask, type Execution, type Task } from '../domain/execution.js';
import type { ExecutorRecord, ExecutorState } from '../domain/executor.js';

export type HeartbeatResult = 'accepted' | 'refused' | 'failed';
export type Backend = 'etcd' | 'nats';

const EXECUTOR_STATES: readonly ExecutorState[] = ['ACTIVE', 'DRAINING', 'EXPIRED', 'STOPPED'];

/** Tasks last from milliseconds (a no-op) to hours (a backup). */
const TASK_SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200];
/** A task waits for its executor from milliseconds to, with --wait-offline, hours. */
const START_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];
const ROUND_TRIP_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export interface MetricsOptions {
  /** The registry as this process sees it, for grid_executors (read at each scrape). */
  executors?: () => Promise<Array<Pick<ExecutorRecord, 'state'>>>;
  /** Also Node's process metrics (CPU, memory, event loop): for a real process, not for tests. */
  processMetrics?: boolean;
}

export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly created: Counter<'job'>;
  private readonly ended: Counter<'job' | 'state'>;
  private readonly tasksEnded: Counter<'job' | 'state'>;
  private readonly taskSeconds: Histogram<'job' | 'state'>;
  private readonly startSeconds: Histogram<'job'>;
  private readonly heartbeats: Counter<'result'>;
  private readonly roundTrip: Record<Backend, Histogram>;
  private readonly probeFailures: Counter<'backend'>;
  private readonly up: Gauge<'backend'>;

  constructor(o: MetricsOptions = {}) {
    const registers = [this.registry];
    this.created = new Counter({ name: 'grid_executions_created_total', help: 'Executions this controller accepted (dry runs are not), by job.', labelNames: ['job'], registers });
    this.ended = new Counter({
      name: 'grid_executions_total',
      help: 'Executions that ended, by job and final state (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT); counted by the controller that recorded the end.',
      labelNames: ['job', 'state'],
      registers,
    });
    this.tasksEnded = new Counter({ name: 'grid_tasks_total', help: 'Tasks that ended, by job and final state; counted by the controller that recorded the end.', labelNames: ['job', 'state'], registers });
    this.taskSeconds = new Histogram({
      name: 'grid_task_duration_seconds',
      help: 'Time from the claim of a task\'s last attempt to its end, for tasks that ran, by job and final state.',
      labelNames: ['job', 'state'],
      buckets: TASK_SECONDS,
      registers,
    });
    this.startSeconds = new Histogram({
      name: 'grid_task_start_latency_seconds',
      help: 'Time from a task\'s release (its job message sent) to its first claim by an executor (BeginTask), by job.',
      labelNames: ['job'],
      buckets: START_SECONDS,
      registers,
    });
    this.heartbeats = new Counter({ name: 'grid_heartbeats_total', help: 'Executor heartbeats received, by result (accepted, refused, failed).', labelNames: ['result'], registers });
    this.roundTrip = {
      etcd: new Histogram({ name: 'grid_etcd_round_trip_seconds', help: 'Round trip of the readiness probe\'s read from etcd.', buckets: ROUND_TRIP_SECONDS, registers }),
      nats: new Histogram({ name: 'grid_nats_round_trip_seconds', help: 'Round trip of the readiness probe\'s ping to NATS.', buckets: ROUND_TRIP_SECONDS, registers }),
    };
    this.probeFailures = new Counter({ name: 'grid_backend_probe_failures_total', help: 'Readiness probes of etcd or NATS that failed or did not answer in time.', labelNames: ['backend'], registers });
    this.up = new Gauge({ name: 'grid_backend_up', help: '1 while the last probe of etcd or NATS answered in time, else 0.', labelNames: ['backend'], registers });
    const executors = o.executors;
    if (executors) {
      new Gauge({
        name: 'grid_executors',
        help: 'Registered executors by state, as this controller sees the registry (every replica reports the same fleet: take the max, not the sum).',
        labelNames: ['state'],
        registers,
        async collect() {
          const counts = new Map<ExecutorState, number>(EXECUTOR_STATES.map((s) => [s, 0]));
          for (const e of await executors()) counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
          for (const [state, n] of counts) this.set({ state }, n);
        },
      });
    }
    if (o.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The text exposition format, and its content type. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * A record the execution store wrote, with the version it replaced (undefined for a new one):
   * counts the execution's end, its tasks' ends and durations, and first claims. Each change is
   * written once (compare-and-swap), so each is counted once, by the process that wrote it.
   */
  recordWritten(prev: Execution | undefined, next: Execution): void {
    const job = next.job;
    if (!prev) this.created.inc({ job });
    if (isTerminalExecution(next.state) && !(prev && isTerminalExecution(prev.state))) this.ended.inc({ job, state: next.state });
    const before = new Map<string, Task>();
    for (const t of prev?.tasks ?? []) before.set(t.key, t);
    for (const t of next.tasks) {
      const was = before.get(t.key);
      if (t.state === 'RUNNING' && t.attempts === 1 && (was?.attempts ?? 0) === 0) {
        observe(this.startSeconds, { job }, t.released_at_ms || next.created_at_ms, t.started_at_ms);
      }
      if (isTerminalTask(t.state) && !(was && isTerminalTask(was.state))) {
        this.tasksEnded.inc({ job, state: t.state });
        if (t.started_at_ms > 0) observe(this.taskSeconds, { job, state: t.state }, t.started_at_ms, t.finished_at_ms);
      }
    }
  }

  heartbeat(result: HeartbeatResult): void {
    this.heartbeats.inc({ result });
  }

  /** A probe of etcd or NATS: its round trip, or undefined when it failed or did not answer in time. */
  backendProbed(backend: Backend, roundTripSeconds: number | undefined): void {
    if (roundTripSeconds === undefined) {
      this.probeFailures.inc({ backend });
      this.up.set({ backend }, 0);
      return;
    }
    this.roundTrip[backend].observe(roundTripSeconds);
    this.up.set({ backend }, 1);
  }
}

/**
 * Observes the time from `fromMs` to `toMs` (two clocks: the claim's and the executor's) in
 * seconds, never negative; nothing when either is missing (a record an older version wrote).
 */
function observe<L extends string>(h: Histogram<L>, labels: Partial<Record<L, string>>, fromMs: number | undefined, toMs: number | undefined): void {
  if (!fromMs || !toMs || !Number.isFinite(toMs - fromMs)) return;
  h.observe(labels, Math.max(0, toMs - fromMs) / 1000);
}
