// An executor's own Prometheus metrics, served with its readiness on `metrics_address`
// (ops-server.ts). One prom-client Registry per executor, never the global one. Labels are
// outcomes and links only: no job names, execution or task ids, so the page tells little more
// than how busy and how connected this executor is.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TaskResult } from '../runners/runner.js';

export type Outcome = TaskResult['outcome'];

/** Which of the executor's connections are up now. */
export interface ExecutorLinks {
  controller: boolean;
  nats: boolean;
}

const TASK_SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200];

export class ExecutorMetrics {
  readonly registry = new Registry();
  private readonly finished: Counter<'outcome'>;
  private readonly seconds: Histogram<'outcome'>;
  private readonly heartbeats: Counter<'result'>;

  constructor(o: { running: () => number; links: () => ExecutorLinks; processMetrics?: boolean }) {
    const registers = [this.registry];
    this.finished = new Counter({ name: 'grid_executor_tasks_total', help: 'Tasks this executor ran to a result, by outcome (succeeded, failed, timed_out, cancelled).', labelNames: ['outcome'], registers });
    this.seconds = new Histogram({
      name: 'grid_executor_task_duration_seconds',
      help: 'Time from a task\'s claim to its result being published, retries included, by outcome.',
      labelNames: ['outcome'],
      buckets: TASK_SECONDS,
      registers,
    });
    this.heartbeats = new Counter({ name: 'grid_executor_heartbeats_total', help: 'Heartbeats sent, by result: accepted, or failed (refused, the controller unreachable or not answering).', labelNames: ['result'], registers });
    new Gauge({
      name: 'grid_executor_tasks_running',
      help: 'Tasks taken from the job stream and not yet acked or handed back.',
      registers,
      collect() {
        this.set(o.running());
      },
    });
    new Gauge({
      name: 'grid_executor_connected',
      help: '1 while the link is up: controller (the last heartbeat was accepted), nats (the connection is open).',
      labelNames: ['link'],
      registers,
      collect() {
        const l = o.links();
        this.set({ link: 'controller' }, l.controller ? 1 : 0);
        this.set({ link: 'nats' }, l.nats ? 1 : 0);
      },
    });
    if (o.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  taskFinished(outcome: Outcome, seconds: number): void {
    this.finished.inc({ outcome });
    this.seconds.observe({ outcome }, Math.max(0, seconds));
  }

  heartbeat(accepted: boolean): void {
    this.heartbeats.inc({ result: accepted ? 'accepted' : 'failed' });
  }
}
