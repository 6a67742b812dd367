// The executor's worker: takes job messages from its JetStream consumers (its own and its
// pools'), each only a pointer to a task; asks the controller what the task is (TaskSource:
// the state of record's task, and only if it is this executor's to run), runs exactly that
// through the job's runner, streams its output to GRID_LOGS and reports started / retrying /
// finished on GRID_EVENTS (TaskEvents). A message is acked only once its final event is published
// (at-least-once: the recorder makes duplicates harmless), and nak'ed with a delay to retry.
//
// Concurrency: one slot per task (cfg.concurrency); a pull loop takes a slot before it asks for a
// message and gives it back if none came, so tasks in flight never exceed the concurrency.

import { setTimeout as delay } from 'node:timers/promises';
import { jetstream, type Consumer, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { decode, readJobMessage, type CancelMessage, type JobMessage } from '../bus/messages.js';
import { STREAMS, subjects } from '../bus/subjects.js';
import type { GridClient } from '../client/client.js';
import type { TaskEventKind } from '../domain/execution.js';
import type { TaskToRun } from '../domain/task.js';
import { UnavailableError } from '../errors.js';
import { taskOutput } from '../runners/output.js';
import type { Runner, TaskResult, TaskSpec } from '../runners/runner.js';
import type { Logger } from '../util/log.js';
import type { AgentWorker } from './agent.js';
import { FleetLocks } from './lock.js';
import { LOG_CHUNK_BYTES, LogPublisher } from './log-publisher.js';
import { PidFiles } from './orphans.js';
import { Slots } from './slots.js';
import { TaskEvents, type EventDetails } from './task-events.js';
import { TaskSource, taskFromPb } from './task-source.js';
import { attemptTimeout, prepareAttempt, runAttempt, TaskRun, type StopReason } from './task-run.js';

export interface WorkerOptions {
  nc: NatsConnection;
  client: GridClient;
  executorId: string;
  executorSecret: string;
  executorName: string;
  /** The executor's own durable consumer on GRID_JOBS, and its pools' shared ones. */
  jobConsumer: string;
  poolConsumers: string[];
  /** The runners this executor offers, by the name job definitions use. The worker closes them. */
  runners: Runner[];
  concurrency: number;
  /** The executor's work_dir: pid files of running tasks live in `<work_dir>/running`. */
  workDir: string;
  /** Cap on each task's output (log_max_bytes_per_task); 0 = none. */
  logMaxBytes: number;
  log: Logger;
  /** How long one pull waits for a message. Default 5000 (the minimum is 1000). */
  pullExpiresMs?: number;
  /** How often a running task's message is told `working()`. Default 5000. */
  workingIntervalMs?: number;
  /** Delay before a task is offered again when the controller cannot be reached. Default 2000. */
  unavailableDelayMs?: number;
  /** Deadline of each BeginTask call. Default 10000. */
  beginTaskTimeoutMs?: number;
}

const SHUTDOWN_NOTE = 'the executor shut down before the task finished';
/** Most messages one pull asks for when work is waiting. */
const MAX_PULL_BATCH = 16;
/** How long a task the controller says is not released yet waits before it is offered again. */
const LATER_DELAY_MS = 2000;

export class Worker implements AgentWorker {
  private readonly js: JetStreamClient;
  private readonly log: Logger;
  private readonly runners = new Map<string, Runner>();
  private readonly slots: Slots;
  private readonly pidFiles: PidFiles;
  private readonly locks: FleetLocks;
  private readonly source: TaskSource;
  private readonly events: TaskEvents;
  /** Tasks in flight, by execution id (a pool may hand one executor several tasks of one execution). */
  private readonly byExecution = new Map<string, Set<TaskRun>>();
  private readonly handlers = new Set<Promise<void>>();
  private readonly fetches = new Set<ConsumerMessages>();
  private readonly loops: Promise<void>[] = [];
  private readonly stopPulling = new AbortController();
  private cancelSub: Subscription | undefined;
  private draining = false;
  private drained: Promise<void> | undefined;
  private started = false;
  /** BeginTask last failed as unreachable: said once, not for every task offered meanwhile. */
  private controllerDown = false;
  private readonly pullExpiresMs: number;
  private readonly workingIntervalMs: number;
  private readonly unavailableDelayMs: number;

  constructor(private readonly o: WorkerOptions) {
    this.js = jetstream(o.nc);
    this.log = o.log;
    for (const r of o.runners) this.runners.set(r.name, r);
    this.slots = new Slots(Math.max(1, o.concurrency));
    this.pidFiles = new PidFiles(o.workDir);
    this.locks = new FleetLocks({ client: o.client, executorId: o.executorId, executorSecret: o.executorSecret, log: o.log.named('locks') });
    this.pullExpiresMs = Math.max(1000, o.pullExpiresMs ?? 5000);
    this.workingIntervalMs = o.workingIntervalMs ?? 5000;
    this.unavailableDelayMs = o.unavailableDelayMs ?? 2000;
    this.source = new TaskSource({ client: o.client, executorId: o.executorId, executorSecret: o.executorSecret, timeoutMs: o.beginTaskTimeoutMs ?? 10_000 });
    this.events = new TaskEvents({ nc: o.nc, js: this.js, executorId: o.executorId, executorName: o.executorName, log: o.log });
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
    const consumers = [this.o.jobConsumer, ...this.o.poolConsumers].filter((c) => c !== '');
    if (consumers.length === 0) this.log.warn('no job consumers in the executor state: register again to take work');
    for (const name of consumers) this.loops.push(this.pullLoop(name));
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

  /** Stops this executor's tasks of one execution; returns how many it was running. */
  cancel(executionId: string, reason: StopReason): number {
    const runs = this.byExecution.get(executionId);
    if (!runs || runs.size === 0) return 0;
    this.log.info(reason === 'timed_out' ? 'execution timed out: stopping its tasks' : 'execution cancelled: stopping its tasks', {
      execution: executionId,
      tasks: runs.size,
    });
    for (const run of runs) run.stop(reason, reason === 'timed_out' ? 'the execution reached its deadline' : undefined);
    return runs.size;
  }

  /**
   * Stops taking work, lets running tasks finish until `deadlineMs` (epoch ms), then stops the
   * rest as cancelled (their finished events are published and their messages acked). Idempotent.
   */
  drain(deadlineMs: number): Promise<void> {
    this.drained ??= (async () => {
      this.draining = true;
      this.slots.close();
      this.stopPulling.abort();
      // Pulls already asked for are left to expire (a pull closed early would leave the server
      // sending a message to nobody until ack_wait); whatever they bring is handed back.
      const pullsDone = Promise.allSettled(this.loops);
      const waitMs = deadlineMs - Date.now();
      if (this.handlers.size > 0 && waitMs > 0) {
        const timer = new AbortController();
        await Promise.race([Promise.allSettled([...this.handlers]), delay(waitMs, undefined, { signal: timer.signal }).catch(() => {})]);
        timer.abort();
      }
      const left = [...this.byExecution.values()].flatMap((s) => [...s]);
      if (left.length > 0) {
        this.log.warn('shutdown grace period over: stopping the tasks still running', { tasks: left.length });
        for (const run of left) run.stop('cancelled', SHUTDOWN_NOTE);
      }
      await Promise.allSettled([...this.handlers]);
      const timer = new AbortController();
      await Promise.race([pullsDone, delay(this.pullExpiresMs + 2000, undefined, { signal: timer.signal }).catch(() => {})]);
      timer.abort();
      for (const f of this.fetches) void f.close().catch(() => {});
      this.cancelSub?.unsubscribe();
      await Promise.allSettled([...this.runners.values()].map((r) => r.close?.()));
    })();
    return this.drained;
  }

  // ---- pulling ----

  private async pullLoop(name: string): Promise<void> {
    let consumer: Consumer | undefined;
    let failing = false;
    // One message per pull while the consumer is idle; while the last pull came back full
    // (work is waiting), as many as there are free slots, so one pull serves several tasks.
    let backlog = false;
    while (!this.draining) {
      if (!(await this.slots.waitFree())) break;
      try {
        consumer ??= await this.js.consumers.get(STREAMS.jobs, name);
        const want: number = backlog ? Math.max(1, Math.min(this.slots.available, MAX_PULL_BATCH)) : 1;
        const iter = await consumer.fetch({ max_messages: want, expires: this.pullExpiresMs });
        this.fetches.add(iter);
        let got = 0;
        try {
          for await (const msg of iter) {
            got++;
            if (failing) this.log.info('pulling work again', { consumer: name });
            failing = false;
            await this.take(msg);
          }
        } finally {
          this.fetches.delete(iter);
        }
        backlog = got === want;
      } catch (err) {
        consumer = undefined;
        if (!this.draining) {
          if (!failing) this.log.warn('cannot pull work; retrying', { consumer: name, error: (err as Error).message });
          failing = true;
        }
        await delay(2000, undefined, { signal: this.stopPulling.signal }).catch(() => {});
      }
    }
  }

  /** Starts a task from a message that was pulled, once it has a slot. */
  private async take(msg: JsMsg): Promise<void> {
    // Another loop may have taken the last free slot meanwhile: keep the message alive until a
    // slot is ours (at most one pull's worth of messages per consumer waits like this).
    const keepAlive = setInterval(() => msg.working(), this.workingIntervalMs);
    const got = await this.slots.acquire().finally(() => clearInterval(keepAlive));
    if (!got || this.draining) {
      if (got) this.slots.release();
      msg.nak(); // taken just as we stopped: hand it straight back
      return;
    }
    this.track(this.handle(msg).finally(() => this.slots.release()));
  }

  private track(p: Promise<void>): void {
    this.handlers.add(p);
    const done = () => void this.handlers.delete(p);
    p.then(done, (err: unknown) => {
      this.log.error('unexpected error while handling a task', { error: (err as Error)?.message ?? String(err) });
      done();
    });
  }

  // ---- one task ----

  private async handle(msg: JsMsg): Promise<void> {
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
      return;
    }
    const attempt = msg.info.deliveryCount;
    const run = new TaskRun(job, attempt);
    const log = this.log.with({ execution: job.execution_id, task: job.task_key, attempt });
    let runs = this.byExecution.get(job.execution_id);
    if (!runs) this.byExecution.set(job.execution_id, (runs = new Set()));
    runs.add(run);
    const working = setInterval(() => {
      try {
        msg.working();
      } catch {
        // the connection is closed; the message will be redelivered
      }
    }, this.workingIntervalMs);
    try {
      await this.runTask(msg, run, log);
    } catch (err) {
      // Only the bus failing gets here (an event that could not be published): hand it back.
      log.error('task could not be completed; it will be offered again', { error: (err as Error).message });
      try {
        msg.nak(this.unavailableDelayMs);
      } catch {
        // connection gone: redelivered after ack_wait
      }
    } finally {
      clearInterval(working);
      runs.delete(run);
      if (runs.size === 0) this.byExecution.delete(job.execution_id);
    }
  }

  private async runTask(msg: JsMsg, run: TaskRun, log: Logger): Promise<void> {
    const { job, attempt } = run;
    let begin;
    try {
      begin = await this.source.begin({ executionId: job.execution_id, taskKey: job.task_key, attempt });
    } catch (err) {
      const unavailable = err instanceof UnavailableError;
      const fields = { error: (err as Error).message, retry_in_ms: this.unavailableDelayMs };
      if (unavailable && !this.controllerDown) log.warn('controller unreachable: tasks wait in JetStream until it is back', fields);
      else if (unavailable) log.debug('controller still unreachable: the task waits in JetStream', fields);
      else log.warn('the controller could not begin the task: it will be offered again', fields);
      this.controllerDown ||= unavailable;
      msg.nak(this.unavailableDelayMs);
      return;
    }
    if (this.controllerDown) {
      this.controllerDown = false;
      log.info('controller reachable again: taking tasks');
    }
    if (!begin.proceed) {
      // Not yet (a rollout wave not released): offered again later. Otherwise never: dropped.
      const what = begin.later ? 'is not to run yet; it will be offered again' : 'is not to run; dropping it';
      log.debug(`the controller says the task ${what}`, { reason: begin.reason });
      if (begin.later) msg.nak(LATER_DELAY_MS);
      else await ack(msg);
      return;
    }
    let task: TaskToRun;
    try {
      task = taskFromPb(begin.task);
    } catch (err) {
      log.error('the controller\'s answer to BeginTask has no usable task; it will be offered again', { error: (err as Error).message });
      msg.nak(this.unavailableDelayMs);
      return;
    }
    const def = task.definition;
    const runner = this.runners.get(def.runner);
    if (!runner) {
      await this.finish(msg, run, { outcome: 'failed', reason: `this executor does not offer the "${def.runner}" runner` }, log);
      return;
    }
    const secrets = begin.secrets ?? {};
    if (run.stopReason) {
      await this.finish(msg, run, { outcome: run.stopReason, reason: run.stopNote ?? run.stopReason }, log);
      return;
    }
    if (this.draining) {
      log.debug('shutting down: handing the task back before it starts');
      msg.nak();
      return;
    }

    const { timeoutMs, expired } = attemptTimeout(task.timeoutMs, task.deadlineMs, Date.now());
    if (expired) {
      await this.finish(msg, run, { outcome: 'timed_out', reason: 'the execution reached its deadline before the task started' }, log);
      return;
    }
    // GRID_TASK_KEY: runners that leave something behind (a Kubernetes Job) name it after the task.
    const env: Record<string, string> = { GRID_TASK_KEY: job.task_key };
    const lockToken = Number(begin.lockToken ?? 0);
    if (lockToken > 0) env['GRID_LOCK_TOKEN'] = String(lockToken);
    const prepared = await prepareAttempt({
      run, task, source: this.source, locks: this.locks, log,
      onWaiting: (reason) => this.publishEvent(run, 'waiting', { reason }),
    });
    if ('failed' in prepared) {
      await this.finish(msg, run, prepared.failed, log);
      return;
    }
    const { files, lock } = prepared;
    if (lock) env['GRID_LOCK_TOKEN'] = String(lock.token);
    const spec: TaskSpec = {
      executionId: job.execution_id,
      executorId: this.o.executorId,
      executorName: this.o.executorName,
      attempt,
      definition: def,
      args: task.args,
      secrets,
      env,
      timeoutMs,
      ...(files ? { files } : {}),
    };

    // The task starts while its started event is being stored; the task's later events wait for it.
    run.started = this.publishEvent(run, 'started', lock ? { lock_token: lock.token, reason: `holds lock ${def.serialize} (token ${lock.token})` } : {});
    run.started.catch(() => {}); // its failure surfaces where it is awaited
    log.info('task started', { job: def.name, version: task.jobVersion, runner: runner.name });

    const publisher = new LogPublisher({
      js: this.js,
      subject: subjects.log(job.execution_id, this.o.executorId),
      taskKey: job.task_key,
      executorName: this.o.executorName,
      attempt,
      // A server configured with a smaller max_payload would refuse full chunks (headers need room too).
      chunkBytes: Math.max(1024, Math.min(LOG_CHUNK_BYTES, (this.o.nc.info?.max_payload ?? LOG_CHUNK_BYTES) - 4096)),
    });
    const sink = taskOutput(publisher, { secrets: Object.values(secrets), maxBytes: this.o.logMaxBytes });
    let result: TaskResult;
    try {
      result = await runAttempt({ run, runner, spec, sink, pidFiles: this.pidFiles, log });
    } finally {
      await lock?.release();
    }
    await publisher.flush();
    if (publisher.failed > 0) {
      log.warn('some of the task\'s output could not be published', { chunks: publisher.failed, error: publisher.lastError?.message });
    }

    if (run.stopReason && (result.outcome === 'cancelled' || result.outcome === 'timed_out')) {
      // Stopped by us (cancel, deadline, shutdown) rather than by the task's own timeout.
      const reason = run.stopNote ?? (result.outcome === run.stopReason ? result.reason : run.stopReason);
      result = { ...result, outcome: run.stopReason, reason };
    }
    const maxAttempts = Math.max(1, task.maxAttempts || 1);
    if (result.outcome === 'failed' && attempt < maxAttempts && !run.stopReason) {
      await this.publishEvent(run, 'retrying', { outcome: 'failed', exit_code: result.exitCode, reason: result.reason });
      const backoff = Math.max(0, task.backoffMs || 0);
      log.info('task failed; it will be retried', { reason: result.reason, exit_code: result.exitCode, retry_in_ms: backoff, max_attempts: maxAttempts });
      msg.nak(backoff);
      return;
    }
    await this.finish(msg, run, result, log);
  }

  /** Publishes the finished event, then acks: the ack comes only after the event is stored. */
  private async finish(msg: JsMsg, run: TaskRun, result: TaskResult, log: Logger): Promise<void> {
    await this.publishEvent(run, 'finished', { outcome: result.outcome, exit_code: result.exitCode, reason: result.reason });
    const level = result.outcome === 'succeeded' ? 'info' : 'warn';
    log[level]('task finished', { outcome: result.outcome, exit_code: result.exitCode, reason: result.reason });
    await ack(msg);
  }

  /** Publishes one of the task's events; later events wait for its started event (order is kept). */
  private async publishEvent(run: TaskRun, kind: TaskEventKind, more: EventDetails): Promise<void> {
    if (kind !== 'started' && run.started) await run.started;
    await this.events.publish(run.job, run.attempt, kind, more);
  }
}

/**
 * Acks (after the task's final event is stored). Not waited for: should the ack be lost, the
 * message comes back after ack_wait, BeginTask refuses it (the task has ended) and it is dropped.
 */
async function ack(msg: JsMsg): Promise<void> {
  try {
    msg.ack();
  } catch {
    // connection gone: the message will be redelivered and dropped then, as above
  }
}
