// The executor's worker: takes job messages from its JetStream consumers (its own and its
// pools'), each only a pointer to a task; asks the controller what the task is (BeginTask(s):
// the definition, arguments, secrets, limits and file digests from the state of record, and
// only if the task is this executor's to run), runs exactly that through the job's runner, streams its output to GRID_LOGS and reports started / retrying /
// finished on GRID_EVENTS. A message is acked only once its final event is published
// (at-least-once: the recorder makes duplicates harmless), and nak'ed with a delay to retry.
//
// Concurrency: one slot per task (cfg.concurrency); a pull loop takes a slot before it asks for a
// message and gives it back if none came, so tasks in flight never exceed the concurrency.

import { setTimeout as delay } from 'node:timers/promises';
import { jetstream, type Consumer, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { decode, encode, jobMsgId, type CancelMessage, type EventMessage, type JobMessage } from '../bus/messages.js';
import { STREAMS, subjects } from '../bus/subjects.js';
import type { GridClient } from '../client/client.js';
import type { BeginTaskResponse, TaskRef, TaskToRun as TaskToRunPb } from '../gen/grid/v1/executor.js';
import type { JobDefinition } from '../domain/job.js';
import type { TaskToRun } from '../domain/task.js';
import { eventId, type TaskEventKind } from '../domain/execution.js';
import { NotImplementedError, UnavailableError } from '../errors.js';
import { taskOutput } from '../runners/output.js';
import type { Runner, RunningTask, TaskOutcome, TaskResult, TaskSpec } from '../runners/runner.js';
import { Batcher } from '../util/batcher.js';
import type { Logger } from '../util/log.js';
import type { AgentWorker } from './agent.js';
import { prepareFiles, TaskFileError } from './files.js';
import { FleetLocks, type HeldLock } from './lock.js';
import { LOG_CHUNK_BYTES, LogPublisher } from './log-publisher.js';
import { PidFiles } from './orphans.js';
import { Slots } from './slots.js';

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

type StopReason = 'cancelled' | 'timed_out';

/** One task taken from the stream, from the moment it arrives until it is acked or nak'ed. */
class TaskRun {
  readonly abort = new AbortController();
  task: RunningTask | undefined;
  stopReason: StopReason | undefined;
  /** Why it was stopped, when it was the executor (shutdown) rather than the operator. */
  stopNote: string | undefined;
  /** The started event on its way: later events of the task wait for it (order is kept). */
  started: Promise<void> | undefined;
  /** What the controller said the task is (BeginTask). */
  spec: TaskToRun | undefined;

  constructor(
    readonly job: JobMessage,
    readonly attempt: number,
  ) {}

  stop(reason: StopReason, note?: string): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopNote = note;
    if (this.task) void this.task.stop(reason).catch(() => {});
    else this.abort.abort();
  }
}

const SHUTDOWN_NOTE = 'the executor shut down before the task finished';
/** Most messages one pull asks for when work is waiting. */
const MAX_PULL_BATCH = 16;
/** How long a task the controller says is not released yet waits before it is offered again. */
const LATER_DELAY_MS = 2000;
/** Most tasks asked about in one BeginTasks call. */
const MAX_BEGIN_BATCH = 64;

export class Worker implements AgentWorker {
  private readonly js: JetStreamClient;
  private readonly log: Logger;
  private readonly runners = new Map<string, Runner>();
  private readonly slots: Slots;
  private readonly pidFiles: PidFiles;
  private readonly locks: FleetLocks;
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
  private readonly beginTaskTimeoutMs: number;

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
    this.beginTaskTimeoutMs = o.beginTaskTimeoutMs ?? 10_000;
  }

  /**
   * BeginTask calls: those asked while one is in flight go together in one BeginTasks call (a
   * pull that brought several tasks asks about them in one round trip). A controller that does
   * not know BeginTasks yet is asked task by task.
   */
  private readonly begins = new Batcher<TaskRef, BeginTaskResponse>({
    max: MAX_BEGIN_BATCH,
    run: async (batch) => {
      const c = this.o.client;
      const auth = { executorId: this.o.executorId, executorSecret: this.o.executorSecret };
      if (batch.length > 1 && this.beginTasksKnown) {
        try {
          const res = await c.call(c.executors, c.executors.beginTasks, { ...auth, tasks: batch.map((p) => p.item) }, this.beginTaskTimeoutMs);
          batch.forEach((p, i) => {
            const r = res.results[i];
            if (r) p.resolve(r);
            else p.reject(new Error('the controller answered BeginTasks for fewer tasks than asked'));
          });
          return;
        } catch (err) {
          if (!(err instanceof NotImplementedError)) throw err;
          this.beginTasksKnown = false;
        }
      }
      await Promise.all(
        batch.map((p) => c.call(c.executors, c.executors.beginTask, { ...auth, ...p.item }, this.beginTaskTimeoutMs).then(p.resolve, p.reject)),
      );
    },
  });
  private beginTasksKnown = true;

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
      const raw = decode<Record<string, unknown>>(msg.data);
      if (typeof raw.execution_id !== 'string' || typeof raw.task_key !== 'string') throw new Error('execution_id or task_key missing');
      job = { execution_id: raw.execution_id, task_key: raw.task_key };
      // The controller sends every job message with its Msg-Id, which the stream deduplicates:
      // one message per task. One without it was not sent by a controller.
      const id = msg.headers?.get('Nats-Msg-Id') ?? '';
      if (id !== jobMsgId(job.execution_id, job.task_key)) throw new Error(`its Msg-Id is ${JSON.stringify(id)}, not the task's`);
      const extra = Object.keys(raw).filter((k) => k !== 'execution_id' && k !== 'task_key');
      if (extra.length) {
        this.log.warn('a job message carried more than a pointer; ignored: the task runs as the controller records it', {
          execution: job.execution_id,
          task: job.task_key,
          ignored: extra.join(','),
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
      begin = await this.begins.add({ executionId: job.execution_id, taskKey: job.task_key, attempt });
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
    if (!begin.proceed && begin.later) {
      log.debug('the controller says the task is not to run yet; it will be offered again', { reason: begin.reason });
      msg.nak(LATER_DELAY_MS);
      return;
    }
    if (!begin.proceed) {
      log.debug('the controller says the task is not to run; dropping it', { reason: begin.reason });
      await ack(msg);
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
    run.spec = task;
    const def = task.definition;
    const runner = this.runners.get(def.runner);
    if (!runner) {
      const reason = `this executor does not offer the "${def.runner}" runner`;
      log.warn('cannot run task', { reason });
      await this.publishEvent(run, 'finished', { outcome: 'failed', reason });
      await ack(msg);
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

    let timeoutMs = task.timeoutMs > 0 ? task.timeoutMs : 0;
    if (task.deadlineMs > 0) {
      const left = task.deadlineMs - Date.now();
      if (left <= 0) {
        await this.finish(msg, run, { outcome: 'timed_out', reason: 'the execution reached its deadline before the task started' }, log);
        return;
      }
      timeoutMs = timeoutMs > 0 ? Math.min(timeoutMs, left) : left;
    }
    // GRID_TASK_KEY: runners that leave something behind (a Kubernetes Job) name it after the task.
    const env: Record<string, string> = { GRID_TASK_KEY: job.task_key };
    const lockToken = Number(begin.lockToken ?? 0);
    if (lockToken > 0) env['GRID_LOCK_TOKEN'] = String(lockToken);
    // Configuration files: fetched, verified and rendered before anything runs; a file that is
    // missing, tampered with or does not render fails the task with the reason.
    let files: TaskSpec['files'];
    if (task.files.length) {
      try {
        files = await prepareFiles(task.files, task.args, def.env_vars.secrets.map((x) => x.name), (name) => this.fetchFile(job, name, run.abort.signal));
      } catch (err) {
        const reason = err instanceof TaskFileError ? err.message : `could not prepare the task's files: ${(err as Error).message}`;
        await this.finish(msg, run, { outcome: 'failed', reason }, log);
        return;
      }
    }
    // Serialized jobs: wait in line for the fleet-wide lock; its revision is the fencing token.
    let lock: HeldLock | undefined;
    const lockName = def.serialize;
    if (lockName) {
      lock = await this.locks.acquire({
        executionId: job.execution_id,
        taskKey: job.task_key,
        signal: run.abort.signal,
        onWaiting: (ahead, holder) =>
          this.publishEvent(run, 'waiting', {
            reason: `waiting for lock ${lockName}${holder ? ` (held by ${holder})` : ''}${ahead ? `, ${ahead} ahead` : ''}`,
          }),
      });
      if (!lock) {
        await this.finish(msg, run, { outcome: run.stopReason ?? 'cancelled', reason: run.stopNote ?? 'stopped while waiting for its lock' }, log);
        return;
      }
      env['GRID_LOCK_TOKEN'] = String(lock.token);
      log.info('holds the serialize lock', { lock: lockName, token: lock.token });
    }
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
    };
    if (files) spec.files = files;

    // The task starts while its started event is being stored; the task's later events wait for it.
    run.started = this.publishEvent(run, 'started', lock ? { lock_token: lock.token, reason: `holds lock ${lockName} (token ${lock.token})` } : {});
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
    let pidFile: string | undefined;
    try {
      // A task an earlier run of this executor started and left running (a Kubernetes Job) is
      // followed again rather than started twice.
      const recovered = await runner.recover?.(spec, sink, run.abort.signal).catch((err: Error) => {
        log.warn('could not look for the task left by an earlier run; starting it', { error: err.message });
        return undefined;
      });
      if (recovered) log.info('resumed a task left running by an earlier run of this executor', { runner: runner.name });
      const task = recovered ?? (await runner.start(spec, sink, run.abort.signal));
      run.task = task;
      if (run.stopReason) void task.stop(run.stopReason).catch(() => {});
      if (task.pid !== undefined) {
        pidFile = await this.pidFiles.write(job.execution_id, job.task_key, task.pid).catch((err: Error) => {
          log.warn('could not record the task\'s process group', { error: err.message });
          return undefined;
        });
      }
      result = await task.wait();
    } catch (err) {
      // The runner could not start it at all (the work folder cannot be written, …).
      log.error('the runner could not start the task', { error: (err as Error).message });
      result = { outcome: 'failed', reason: `the executor could not start the task: ${(err as Error).message}` };
    } finally {
      if (pidFile) await this.pidFiles.remove(pidFile).catch(() => {});
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

  /** One of the task's files, from the controller, which checks that this task may read it. */
  private fetchFile(job: JobMessage, name: string, signal: AbortSignal): AsyncIterable<Uint8Array> {
    const c = this.o.client;
    const req = { executorId: this.o.executorId, executorSecret: this.o.executorSecret, executionId: job.execution_id, taskKey: job.task_key, name };
    return (async function* () {
      for await (const chunk of c.stream(c.executors, c.executors.getTaskFile, req, signal)) yield chunk.data;
    })();
  }

  /** Publishes the finished event, then acks: the ack comes only after the event is stored. */
  private async finish(msg: JsMsg, run: TaskRun, result: TaskResult, log: Logger): Promise<void> {
    await this.publishEvent(run, 'finished', { outcome: result.outcome, exit_code: result.exitCode, reason: result.reason });
    const level = result.outcome === 'succeeded' ? 'info' : 'warn';
    log[level]('task finished', { outcome: result.outcome, exit_code: result.exitCode, reason: result.reason });
    await ack(msg);
  }

  /**
   * Publishes one event with its id as Msg-Id (so a repeat is deduplicated). Retries for a while
   * if JetStream does not answer; throws if it never does.
   */
  private async publishEvent(
    run: TaskRun,
    kind: TaskEventKind,
    more: { outcome?: TaskOutcome; exit_code?: number; reason?: string; lock_token?: number },
  ): Promise<void> {
    if (kind !== 'started' && run.started) await run.started;
    const ev: EventMessage = {
      execution_id: run.job.execution_id,
      task_key: run.job.task_key,
      executor_id: this.o.executorId,
      executor_name: this.o.executorName,
      attempt: run.attempt,
      kind,
      at_ms: Date.now(),
    };
    if (more.outcome !== undefined) ev.outcome = more.outcome;
    if (more.exit_code !== undefined) ev.exit_code = more.exit_code;
    if (more.reason !== undefined) ev.reason = more.reason;
    if (more.lock_token !== undefined) ev.lock_token = more.lock_token;
    const subject = subjects.event(ev.execution_id, this.o.executorId);
    const data = encode(ev);
    const giveUpAt = Date.now() + 60_000;
    let wait = 250;
    for (;;) {
      try {
        await this.js.publish(subject, data, { msgID: eventId(ev) });
        return;
      } catch (err) {
        if (this.o.nc.isClosed() || Date.now() + wait > giveUpAt) {
          throw new Error(`could not publish the ${kind} event: ${(err as Error).message}`, { cause: err });
        }
        this.log.warn('could not publish a task event; retrying', { kind, execution: ev.execution_id, error: (err as Error).message });
        await delay(wait);
        wait = Math.min(wait * 2, 5000);
      }
    }
  }
}

function taskFromPb(t: TaskToRunPb | undefined): TaskToRun {
  if (!t) throw new Error('no task in the answer (is the controller older than this executor?)');
  const definition = JSON.parse(t.definitionJson) as JobDefinition;
  if (!definition || typeof definition.runner !== 'string') throw new Error('the definition has no runner');
  definition.files ??= [];
  definition.env_vars ??= { secrets: [], args: [] };
  return {
    job: t.job,
    jobVersion: t.jobVersion,
    definition,
    args: t.args ?? {},
    deadlineMs: t.deadlineMs,
    timeoutMs: t.timeoutMs,
    maxAttempts: t.maxAttempts,
    backoffMs: t.backoffMs,
    files: t.files.map((f) => ({ name: f.name, path: f.path, template: f.template, ...(f.mode ? { mode: f.mode } : {}), digest: f.digest })),
  };
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
