// The executor's worker: takes job messages from its JetStream consumers (pull.ts), each only a
// pointer to a task; claims the task from the controller (the state of record's task, and only
// if it is this executor process's to run) and runs exactly that (task-run.ts), streaming its
// output to GRID_LOGS and reporting on GRID_EVENTS (events.ts). A message is acked only once
// the task's result is published. A redelivery of a task this executor is running keeps the
// first run (never a second one beside it); a stop order — a cancel, or a claim another attempt
// took over — reaches it over NATS or through the heartbeat's answer.
//
// Concurrency: one slot per task (cfg.concurrency); a pull loop takes a slot before it asks for a
// message and gives it back if none came, so tasks in flight never exceed the concurrency.

import { setTimeout as delay } from 'node:timers/promises';
import { jetstream, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { decode, readFanoutMessage, readJobMessage, type CancelMessage, type JobMessage } from '../bus/messages.js';
import { subjects } from '../bus/subjects.js';
import type { GridClient } from '../client/client.js';
import type { Runner } from '../runners/runner.js';
import { newId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { AgentWorker } from './agent.js';
import { TaskEvents } from './events.js';
import { grpcLink, type ControllerLink, type RunningRef, type TaskStopOrder } from './link.js';
import { FleetLocks } from './lock.js';
import { PidFiles } from './orphans.js';
import { PULL_EXPIRES_MS, Puller } from './pull.js';
import { Slots } from './slots.js';
import { TaskSource } from './task-source.js';
import { runTask, STARTED_DEFER_MS, TaskRun, type StopReason, type TaskContext } from './task-run.js';

export interface WorkerOptions {
  nc: NatsConnection;
  client: GridClient;
  /** The controller, as the worker sees it; defaults to gRPC over `client`. */
  link?: ControllerLink;
  /** This executor process's claimant id; a new random one by default. */
  session?: string;
  executorId: string;
  executorSecret: string;
  executorName: string;
  /** The executor's own durable consumer on GRID_JOBS, and its pools' shared ones. */
  jobConsumer: string;
  poolConsumers: string[];
  /** Its groups (with `all`): it hears their fan-out pointers (FanoutMessage). None: job messages only. */
  groups?: string[];
  /** The runners this executor offers, by the name job definitions use. The worker closes them. */
  runners: Runner[];
  concurrency: number;
  /** The executor's work_dir: pid files of running tasks live in `<work_dir>/running`. */
  workDir: string;
  /** Cap on each task's output (log_max_bytes_per_task); 0 = none. */
  logMaxBytes: number;
  log: Logger;
  /** How long one pull waits for a message. Default PULL_EXPIRES_MS (the minimum is 1000). */
  pullExpiresMs?: number;
  /** How often a running task's message is told `working()`. Default 5000. */
  workingIntervalMs?: number;
  /** Delay before a task is offered again when the controller cannot be reached. Default 2000. */
  unavailableDelayMs?: number;
  /** Deadline of each BeginTasks call. Default 10000. */
  beginTaskTimeoutMs?: number;
  /** Told of each task's result (the executor's metrics). */
  onTaskFinished?: TaskContext['onFinished'];
  /** How long a task runs before its started event is sent on its own. Default STARTED_DEFER_MS. */
  startedDeferMs?: number;
}

/** How many finished tasks a process remembers (see Worker.finished). */
const FINISHED_KEPT = 50_000;
const SHUTDOWN_NOTE = 'the executor shut down before the task finished';
/** After the grace period, how long a result that cannot be published is retried before it is handed back. */
export const PUBLISH_AFTER_GRACE_MS = 10_000;

export class Worker implements AgentWorker {
  private readonly js: JetStreamClient;
  private readonly log: Logger;
  private readonly runners = new Map<string, Runner>();
  private readonly slots: Slots;
  private readonly pidFiles: PidFiles;
  private readonly puller: Puller;
  private readonly ctx: TaskContext;
  /** This executor process: claims are made for it, and a restart is another claimant. */
  readonly session: string;
  /** Tasks in flight, by `<execution>/<task>`: one run per task, whatever the deliveries. */
  private readonly runs = new Map<string, TaskRun>();
  /**
   * Tasks this process finished (result published), newest last: a copy of one of their messages
   * (an ack that was lost) is acked without asking to claim it again — the controller answers a
   * process's repeated claim with the same attempt, so the process must not ask for one it ran.
   */
  private readonly finished = new Set<string>();
  private readonly handlers = new Set<Promise<void>>();
  private readonly hardStop = new AbortController();
  private cancelSub: Subscription | undefined;
  private readonly fanoutSubs: Subscription[] = [];
  private readonly workingIntervalMs: number;
  private draining = false;
  private drained: Promise<void> | undefined;
  private started = false;
  /** BeginTask last failed as unreachable: said once, not for every task offered meanwhile. */
  private controllerDown = false;

  constructor(private readonly o: WorkerOptions) {
    this.js = jetstream(o.nc);
    this.log = o.log;
    this.session = o.session ?? newId();
    for (const r of o.runners) this.runners.set(r.name, r);
    this.slots = new Slots(Math.max(1, o.concurrency));
    this.pidFiles = new PidFiles(o.workDir);
    const workingIntervalMs = (this.workingIntervalMs = o.workingIntervalMs ?? 5000);
    const link = o.link ?? grpcLink(o.client, o.executorId, o.executorSecret);
    this.ctx = {
      nc: o.nc,
      js: this.js,
      executorId: o.executorId,
      executorName: o.executorName,
      runners: this.runners,
      source: new TaskSource({ link, session: this.session, timeoutMs: o.beginTaskTimeoutMs ?? 10_000 }),
      events: new TaskEvents({ nc: o.nc, js: this.js, executorId: o.executorId, executorName: o.executorName, log: o.log }),
      locks: new FleetLocks({ client: o.client, executorId: o.executorId, executorSecret: o.executorSecret, log: o.log.named('locks') }),
      pidFiles: this.pidFiles,
      logMaxBytes: o.logMaxBytes,
      unavailableDelayMs: o.unavailableDelayMs ?? 2000,
      startedDeferMs: o.startedDeferMs ?? STARTED_DEFER_MS,
      hardStop: this.hardStop.signal,
      draining: () => this.draining,
      controllerDown: (down, log, fields) => this.sayControllerDown(down, log, fields),
      ...(o.onTaskFinished ? { onFinished: o.onTaskFinished } : {}),
    };
    this.puller = new Puller({
      js: this.js,
      nc: o.nc,
      slots: this.slots,
      log: o.log,
      expiresMs: Math.max(1000, o.pullExpiresMs ?? PULL_EXPIRES_MS),
      workingIntervalMs,
      onMessage: (msg) => this.take(msg, workingIntervalMs),
    });
  }

  /** Kills tasks orphaned by an earlier crash, subscribes to cancellations and starts pulling. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const killed = await this.pidFiles.reapOrphans(this.log);
    if (killed > 0) this.log.info('cleaned up tasks left over from an earlier run; JetStream will offer them again', { killed });
    this.cancelSub = this.o.nc.subscribe(subjects.cancel(this.o.executorId), {
      callback: (err, m) => {
        if (err) return;
        try {
          const c = decode<CancelMessage>(m.data);
          if (typeof c.execution_id !== 'string') return;
          this.cancel(c.execution_id, c.reason === 'timed_out' ? 'timed_out' : 'cancelled');
        } catch {
          this.log.debug('ignored an unreadable cancel message', { subject: m.subject });
        }
      },
    });
    for (const g of this.o.groups ?? []) {
      const callback = (err: Error | null, m: Msg) => {
        if (!err) this.takePointer(m.data, this.workingIntervalMs);
      };
      this.fanoutSubs.push(this.o.nc.subscribe(subjects.fanout(g), { callback }));
    }
    const consumers = [this.o.jobConsumer, ...this.o.poolConsumers].filter((c) => c !== '');
    if (consumers.length === 0) this.log.warn('no job consumers in the executor state: register again to take work');
    this.puller.start(consumers);
    this.log.info('taking work', {
      consumers: consumers.join(','),
      runners: [...this.runners.keys()].join(','),
      concurrency: this.slots.size,
    });
  }

  /** Tasks taken and not yet acked or handed back. */
  runningTasks(): number {
    return this.handlers.size;
  }

  /** The claimed tasks running now, for the heartbeat (a stop order it missed comes back in its answer). */
  running(): RunningRef[] {
    return [...this.runs.values()].filter((r) => r.attempt > 0).map((r) => ({ executionId: r.job.execution_id, taskKey: r.job.task_key, attempt: r.attempt }));
  }

  /** Stops this executor's tasks of one execution; returns how many it was running. */
  cancel(executionId: string, reason: StopReason): number {
    const runs = [...this.runs.values()].filter((r) => r.job.execution_id === executionId && !r.stopReason);
    if (runs.length === 0) return 0;
    this.log.info(reason === 'timed_out' ? 'execution timed out: stopping its tasks' : 'execution cancelled: stopping its tasks', {
      execution: executionId,
      tasks: runs.length,
    });
    for (const run of runs) run.stop(reason, reason === 'timed_out' ? 'the execution reached its deadline' : undefined);
    return runs.length;
  }

  /** The heartbeat's stop orders: cancels this executor missed, and claims taken over by another attempt. */
  applyStops(orders: TaskStopOrder[]): void {
    for (const s of orders) {
      const run = this.runs.get(runKey(s.executionId, s.taskKey));
      if (!run || run.stopReason) continue;
      this.log.warn('the controller says to stop a task', { execution: s.executionId, task: s.taskKey, why: s.reason, note: s.note });
      if (s.reason === 'superseded') run.stop('cancelled', `stopped: ${s.note}`);
      else run.stop(s.reason, s.reason === 'timed_out' ? 'the execution reached its deadline' : undefined);
    }
  }

  /**
   * Stops taking work, lets running tasks finish until `deadlineMs` (epoch ms), then stops the
   * rest as cancelled (their finished events are published and their messages acked). Idempotent.
   */
  drain(deadlineMs: number): Promise<void> {
    this.drained ??= (async () => {
      this.draining = true;
      this.slots.close();
      const pullsDone = this.puller.stop();
      const waitMs = deadlineMs - Date.now();
      if (this.handlers.size > 0 && waitMs > 0) {
        const timer = new AbortController();
        await Promise.race([Promise.allSettled([...this.handlers]), delay(waitMs, undefined, { signal: timer.signal }).catch(() => {})]);
        timer.abort();
      }
      const left = [...this.runs.values()];
      if (left.length > 0) {
        this.log.warn('shutdown grace period over: stopping the tasks still running', { tasks: left.length });
        for (const run of left) run.stop('cancelled', SHUTDOWN_NOTE);
      }
      const giveUp = setTimeout(() => this.hardStop.abort(), PUBLISH_AFTER_GRACE_MS);
      await Promise.allSettled([...this.handlers]);
      clearTimeout(giveUp);
      await pullsDone;
      this.cancelSub?.unsubscribe();
      for (const s of this.fanoutSubs) s.unsubscribe();
      await Promise.allSettled([...this.runners.values()].map((r) => r.close?.()));
    })();
    return this.drained;
  }

  private sayControllerDown(down: boolean, log: Logger, fields: Record<string, unknown>): void {
    if (!down) {
      if (this.controllerDown) log.info('controller reachable again: taking tasks');
      this.controllerDown = false;
      return;
    }
    if (!this.controllerDown) log.warn('controller unreachable: tasks wait in JetStream until it is back', fields);
    else log.debug('controller still unreachable: the task waits in JetStream', fields);
    this.controllerDown = true;
  }

  /**
   * A fan-out's broadcast pointer: this executor's task of it (its key is the executor's id) is
   * asked for like a job message's, once a slot is free. The controller decides whether there is
   * one for it; its per-executor message, which follows, finds it running or done here.
   */
  private takePointer(data: Uint8Array, workingIntervalMs: number): void {
    let job: JobMessage;
    try {
      job = { execution_id: readFanoutMessage(data).execution_id, task_key: this.o.executorId };
    } catch (err) {
      this.log.debug('ignored an unreadable fan-out pointer', { error: (err as Error).message });
      return;
    }
    const key = runKey(job.execution_id, job.task_key);
    if (this.draining || this.finished.has(key) || this.runs.has(key)) return;
    void this.slots.acquire().then((got) => {
      if (!got) return;
      if (this.draining || this.finished.has(key) || this.runs.has(key)) {
        this.slots.release();
        return;
      }
      this.runNew(job, undefined, workingIntervalMs);
    });
  }

  /** A message holding a slot: a new task, or a redelivery of one running here. */
  private take(msg: JsMsg, workingIntervalMs: number): void {
    let job: JobMessage;
    try {
      const read = readJobMessage(msg.data, msg.headers?.get('Nats-Msg-Id') ?? '');
      job = read.job;
      if (read.ignored.length) {
        this.log.warn('a job message carried more than a pointer; ignored: the task runs as the controller records it', {
          execution: job.execution_id,
          task: job.task_key,
          ignored: read.ignored.join(','),
        });
      }
    } catch (err) {
      this.log.warn('dropping a job message that cannot be read', { subject: msg.subject, seq: msg.seq, error: (err as Error).message });
      try {
        msg.term();
      } catch {
        // connection gone: it comes back after ack_wait and is dropped then
      }
      this.slots.release();
      return;
    }
    const key = runKey(job.execution_id, job.task_key);
    if (this.finished.has(key)) {
      this.log.debug('a task this executor finished was offered again: acked', { execution: job.execution_id, task: job.task_key });
      try {
        msg.ack();
      } catch {
        // connection gone: offered again later, and acked then
      }
      this.slots.release();
      return;
    }
    const running = this.runs.get(key);
    if (running) {
      // Redelivered while it runs (a stall past ack_wait), or the message following the
      // broadcast pointer it was taken from: one run, every message kept alive.
      const fields = { execution: job.execution_id, task: job.task_key, attempt: running.attempt };
      if (running.hasMessage()) this.log.info('the task was offered again while it runs here: keeping the run', fields);
      else this.log.debug('the job message of a task taken from its fan-out pointer came: kept with the run', fields);
      running.attach(msg);
      this.slots.release();
      return;
    }
    this.runNew(job, msg, workingIntervalMs);
  }

  /** Runs a task this executor does not run yet, holding a slot (released when it is done). */
  private runNew(job: JobMessage, msg: JsMsg | undefined, workingIntervalMs: number): void {
    const key = runKey(job.execution_id, job.task_key);
    const run = new TaskRun(job, msg, workingIntervalMs);
    this.runs.set(key, run);
    const log = this.log.with({ execution: job.execution_id, task: job.task_key });
    const p = runTask(this.ctx, run, log)
      .then((ran) => {
        if (!ran) return;
        this.finished.add(key);
        if (this.finished.size > FINISHED_KEPT) this.finished.delete(this.finished.values().next().value!);
      })
      .catch((err: unknown) => {
        // Only the bus failing gets here (a result that could not be published): hand it back.
        log.error('task result could not be published; its message is handed back', { error: (err as Error).message });
        run.nak(this.ctx.unavailableDelayMs);
      })
      .finally(() => {
        this.runs.delete(key);
        this.slots.release();
      });
    this.handlers.add(p);
    void p.finally(() => this.handlers.delete(p));
  }
}

function runKey(executionId: string, taskKey: string): string {
  return `${executionId}/${taskKey}`;
}
