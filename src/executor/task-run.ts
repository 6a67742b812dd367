// One task taken from the job stream, from the moment it arrives until its message is acked or
// handed back, and the ordered steps that run it: claim, files, lock, run, finish (and, for a
// failed attempt with attempts left, retry: claim the next attempt and run again).

import { setTimeout as delay } from 'node:timers/promises';
import type { JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { JobMessage } from '../bus/messages.js';
import { subjects } from '../bus/subjects.js';
import type { StartedPart, TaskEventKind } from '../domain/execution.js';
import type { TaskToRun } from '../domain/task.js';
import { UnavailableError } from '../errors.js';
import { taskOutput } from '../runners/output.js';
import type { LogSink, Runner, RunningTask, TaskResult, TaskSpec } from '../runners/runner.js';
import type { Logger } from '../util/log.js';
import type { EventDetails, TaskEvents } from './events.js';
import { prepareFiles, TaskFileError } from './files.js';
import type { FleetLocks, HeldLock } from './lock.js';
import type { Claim } from './link.js';
import { LOG_CHUNK_BYTES, LogPublisher } from './log-publisher.js';
import type { PidFiles } from './orphans.js';
import type { TaskSource } from './task-source.js';

export type StopReason = 'cancelled' | 'timed_out';

/** How long a task the controller says is not to run yet waits before it is offered again. */
const LATER_DELAY_MS = 2000;
/**
 * How long a task runs before its started event is sent on its own. The claim made the task
 * RUNNING already; the event adds its start time and the lock it holds. A task that ends sooner
 * sends one finished event carrying both (TaskEvent.started): one publish, one delivery to the
 * recorder and, for a task holding a lock, one write fewer.
 */
export const STARTED_DEFER_MS = 100;

export class TaskRun {
  readonly abort = new AbortController();
  task: RunningTask | undefined;
  stopReason: StopReason | undefined;
  /** Why it was stopped, when it was the executor (shutdown) rather than the operator. */
  stopNote: string | undefined;
  /** The started event on its way: later events of the task wait for it (order is kept). */
  started: Promise<void> | undefined;
  /** The started event not sent yet (see STARTED_DEFER_MS), and the timer that will send it. */
  startedLater: { attempt: number; part: StartedPart; timer: NodeJS.Timeout } | undefined;
  /** The attempt claimed (0 until the controller answers). */
  attempt = 0;
  /** performance.now() at its first claim, for the task's duration. */
  claimedAt: number | undefined;
  /**
   * The task's message, and any redelivery of it that came while it ran: all kept alive, all
   * acked. None for a task taken from a fan-out's broadcast pointer until its message follows.
   */
  private readonly msgs: JsMsg[];
  private readonly keepAlive: NodeJS.Timeout;

  constructor(
    readonly job: JobMessage,
    msg: JsMsg | undefined,
    workingIntervalMs: number,
  ) {
    this.msgs = msg ? [msg] : [];
    this.keepAlive = setInterval(() => this.each((m) => m.working()), workingIntervalMs);
  }

  /** A redelivery of the message of this very task, while it runs: kept alive with the first. */
  attach(msg: JsMsg): void {
    this.msgs.push(msg);
    // Settled already (a broadcast-taken task whose message came just as it ended): the same for this one.
    if (this.settled) this.each(this.settled, [msg]);
  }

  /** Whether a job message of the task came (false: taken from a broadcast pointer only). */
  hasMessage(): boolean {
    return this.msgs.length > 0;
  }

  ack(): void {
    this.settle((m) => m.ack());
  }

  nak(delayMs?: number): void {
    this.settle((m) => m.nak(delayMs));
  }

  term(): void {
    this.settle((m) => m.term());
  }

  private settled: ((m: JsMsg) => void) | undefined;

  private settle(fn: (m: JsMsg) => void): void {
    clearInterval(this.keepAlive);
    this.settled = fn;
    this.each(fn);
  }

  private each(fn: (m: JsMsg) => void, msgs = this.msgs): void {
    for (const m of msgs) {
      try {
        fn(m);
      } catch {
        // the connection is gone: the message comes back after ack_wait, and its claim decides
      }
    }
  }

  stop(reason: StopReason, note?: string): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopNote = note;
    if (this.task) void this.task.stop(reason).catch(() => {});
    else this.abort.abort();
  }
}

/** What the steps of a task need from the executor. */
export interface TaskContext {
  nc: NatsConnection;
  js: JetStreamClient;
  executorId: string;
  executorName: string;
  runners: Map<string, Runner>;
  source: TaskSource;
  events: TaskEvents;
  locks: FleetLocks;
  pidFiles: PidFiles;
  logMaxBytes: number;
  unavailableDelayMs: number;
  /** How long a task runs before its started event is sent on its own (STARTED_DEFER_MS). */
  startedDeferMs: number;
  /** Aborts when the executor stops for good: a result not published by then is handed back. */
  hardStop: AbortSignal;
  draining: () => boolean;
  /** BeginTask failed as unreachable: logged once by the worker, not once per task. */
  controllerDown: (down: boolean, log: Logger, fields: Record<string, unknown>) => void;
  /** Told of each task's result once it is published: its outcome, and seconds since its first claim. */
  onFinished?: (outcome: TaskResult['outcome'], seconds: number) => void;
}

/**
 * Runs one task to its end: claims it, prepares and runs each attempt, retries a failed attempt
 * that has attempts left (the next claim names the one it retries), and publishes the result
 * before the message is acked. Resolves true once a claimed task's result is published (false
 * when it was handed back or dropped unclaimed); throws only when the result could not be published.
 */
export async function runTask(ctx: TaskContext, run: TaskRun, log: Logger): Promise<boolean> {
  const { job } = run;
  let retryOf: number | undefined;
  let failures = 0;
  let last: TaskResult | undefined;
  for (;;) {
    if (ctx.draining() && retryOf === undefined) {
      log.debug('shutting down: handing the task back before it is claimed');
      run.nak();
      return false;
    }
    let claim: Claim;
    try {
      claim = await ctx.source.claim({ executionId: job.execution_id, taskKey: job.task_key, ...(retryOf ? { retryOf } : {}) });
    } catch (err) {
      ctx.controllerDown(err instanceof UnavailableError, log, { error: (err as Error).message, retry_in_ms: ctx.unavailableDelayMs });
      if (last && !run.stopReason && !ctx.draining()) {
        // A retry waits here for the controller, its message kept alive.
        await delay(ctx.unavailableDelayMs, undefined, { signal: run.abort.signal }).catch(() => {});
        continue;
      }
      if (last) return finish(ctx, run, last, log);
      run.nak(ctx.unavailableDelayMs);
      return false;
    }
    ctx.controllerDown(false, log, {});
    if (!claim.proceed) {
      if (last) return finish(ctx, run, last, log);
      // Not now (a rollout wave not released, or claimed by a live executor): offered again later. Otherwise never: dropped.
      const what = claim.later ? 'cannot be claimed now; it will be offered again' : 'is not to run; dropping it';
      log.debug(`the controller says the task ${what}`, { reason: claim.reason });
      if (claim.later) run.nak(LATER_DELAY_MS);
      else run.ack();
      return false;
    }
    run.attempt = claim.attempt;
    run.claimedAt ??= performance.now();
    const alog = log.with({ attempt: claim.attempt });
    const result = claim.task
      ? await runAttempt(ctx, run, claim.task, claim.secrets, claim.lockToken, alog)
      : { outcome: 'failed' as const, reason: `the controller's answer to BeginTask has no usable task: ${claim.unusable ?? 'none'}` };
    const maxAttempts = Math.max(1, claim.task?.maxAttempts || 1);
    if (result.outcome === 'failed') failures++;
    if (result.outcome !== 'failed' || failures >= maxAttempts || run.stopReason || ctx.draining()) return finish(ctx, run, result, alog);
    await publishEvent(ctx, run, 'retrying', { outcome: 'failed', exit_code: result.exitCode, reason: result.reason });
    const backoff = Math.max(0, claim.task?.backoffMs || 0);
    alog.info('task failed; it will be retried', { reason: result.reason, exit_code: result.exitCode, retry_in_ms: backoff, max_attempts: maxAttempts });
    await delay(backoff, undefined, { signal: run.abort.signal }).catch(() => {});
    if (run.stopReason) return finish(ctx, run, { outcome: run.stopReason, reason: run.stopNote ?? `${run.stopReason} while waiting to retry` }, alog);
    retryOf = claim.attempt;
    last = result;
  }
}

/** One attempt, claimed: the deadline, the files and the lock, then the runner. */
async function runAttempt(ctx: TaskContext, run: TaskRun, task: TaskToRun, secrets: Record<string, string>, lockToken: number, log: Logger): Promise<TaskResult> {
  const { job } = run;
  const def = task.definition;
  const runner = ctx.runners.get(def.runner);
  if (!runner) return { outcome: 'failed', reason: `this executor does not offer the "${def.runner}" runner` };
  if (run.stopReason) return { outcome: run.stopReason, reason: run.stopNote ?? run.stopReason };
  const { timeoutMs, expired } = attemptTimeout(task.timeoutMs, task.deadlineMs, Date.now());
  if (expired) return { outcome: 'timed_out', reason: 'the execution reached its deadline before the task started' };
  // GRID_TASK_KEY: runners that leave something behind (a Kubernetes Job) name it after the task.
  const env: Record<string, string> = { GRID_TASK_KEY: job.task_key };
  if (lockToken > 0) env['GRID_LOCK_TOKEN'] = String(lockToken);
  const prepared = await prepareAttempt({
    run, task, source: ctx.source, locks: ctx.locks, log,
    onWaiting: (reason) => publishEvent(ctx, run, 'waiting', { reason }),
  });
  if ('failed' in prepared) return prepared.failed;
  const { files, lock } = prepared;
  if (lock) env['GRID_LOCK_TOKEN'] = String(lock.token);
  // A lock lost while the task runs (its lease could lapse) stops the task; it is reported failed.
  let lostLock: string | undefined;
  lock?.onLost((why) => {
    if (run.stopReason) return; // already being stopped (cancel, deadline, shutdown): that is its result
    lostLock = `${why}; the task was stopped`;
    run.stop('cancelled', lostLock);
  });
  const spec: TaskSpec = {
    executionId: job.execution_id,
    executorId: ctx.executorId,
    executorName: ctx.executorName,
    attempt: run.attempt,
    definition: def,
    args: task.args,
    secrets,
    env,
    timeoutMs,
    ...(files ? { files } : {}),
  };
  // The claim made the task RUNNING; the started event tells followers, with the lock it holds.
  // It goes out once the task has run STARTED_DEFER_MS (a shorter task's finished event carries
  // it); the task's later events wait for it.
  deferStarted(ctx, run, lock ? { at_ms: Date.now(), lock_token: lock.token, reason: `holds lock ${def.serialize} (token ${lock.token})` } : { at_ms: Date.now() });
  log.info('task started', { job: def.name, version: task.jobVersion, runner: runner.name });
  const publisher = new LogPublisher({
    js: ctx.js,
    subject: subjects.log(job.execution_id, ctx.executorId),
    taskKey: job.task_key,
    executorName: ctx.executorName,
    attempt: run.attempt,
    // A server configured with a smaller max_payload would refuse full chunks (headers need room too).
    chunkBytes: Math.max(1024, Math.min(LOG_CHUNK_BYTES, (ctx.nc.info?.max_payload ?? LOG_CHUNK_BYTES) - 4096)),
  });
  const sink = taskOutput(publisher, { secrets: Object.values(secrets), maxBytes: ctx.logMaxBytes });
  let result: TaskResult;
  try {
    result = await runOnRunner({ run, runner, spec, sink, pidFiles: ctx.pidFiles, log });
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
  if (lostLock) result = { ...result, outcome: 'failed', reason: lostLock };
  return result;
}

/**
 * Publishes the finished event, then acks: the ack comes only after the event is stored. The
 * event is retried until the executor stops: the task ran, and running it again is not how its
 * result should be learnt. Should the ack be lost, the message comes back after ack_wait, the
 * claim is refused (the task has ended) and it is dropped.
 */
async function finish(ctx: TaskContext, run: TaskRun, result: TaskResult, log: Logger): Promise<true> {
  await publishEvent(ctx, run, 'finished', { outcome: result.outcome, exit_code: result.exitCode, reason: result.reason }, ctx.hardStop);
  const level = result.outcome === 'succeeded' ? 'info' : 'warn';
  log[level]('task finished', { outcome: result.outcome, exit_code: result.exitCode, reason: result.reason });
  ctx.onFinished?.(result.outcome, run.claimedAt === undefined ? 0 : (performance.now() - run.claimedAt) / 1000);
  run.ack();
  return true;
}

/**
 * Publishes one of the task's events; later events wait for its started event (order is kept).
 * A finished event whose started event was not sent yet carries it instead.
 */
async function publishEvent(ctx: TaskContext, run: TaskRun, kind: TaskEventKind, more: EventDetails, until?: AbortSignal): Promise<void> {
  const pending = run.startedLater;
  if (kind === 'finished' && pending && pending.attempt === run.attempt) {
    clearTimeout(pending.timer);
    run.startedLater = undefined;
    more = { ...more, started: pending.part };
  } else if (kind !== 'started') {
    sendStarted(ctx, run);
  }
  if (kind !== 'started' && run.started) await run.started.catch(() => {});
  await ctx.events.publish(run.job, run.attempt, kind, more, until);
}

/** Sends the attempt's started event after ctx.startedDeferMs, unless the task's next event takes it first. */
function deferStarted(ctx: TaskContext, run: TaskRun, part: StartedPart): void {
  if (run.startedLater) clearTimeout(run.startedLater.timer);
  run.startedLater = { attempt: run.attempt, part, timer: setTimeout(() => sendStarted(ctx, run), ctx.startedDeferMs) };
}

/** Sends the started event held back by deferStarted now, if it is still held. */
function sendStarted(ctx: TaskContext, run: TaskRun): void {
  const pending = run.startedLater;
  if (!pending) return;
  clearTimeout(pending.timer);
  run.startedLater = undefined;
  const { at_ms, lock_token, reason } = pending.part;
  const more: EventDetails = { at_ms, ...(lock_token !== undefined ? { lock_token } : {}), ...(reason !== undefined ? { reason } : {}) };
  run.started = ctx.events.publish(run.job, pending.attempt, 'started', more);
  run.started.catch(() => {}); // its failure surfaces where it is awaited
}

/**
 * Runs one attempt on the runner: follows a task an earlier run of this executor left running
 * (a Kubernetes Job) rather than start it twice, records its process group while it runs (so a
 * crash of the executor can be cleaned up), and waits for its result. A runner that cannot start
 * the task at all (the work folder cannot be written, …) makes it fail with the reason.
 */
export async function runOnRunner(o: { run: TaskRun; runner: Runner; spec: TaskSpec; sink: LogSink; pidFiles: PidFiles; log: Logger }): Promise<TaskResult> {
  const { run, runner, spec, sink, log } = o;
  let pidFile: string | undefined;
  try {
    const recovered = await runner.recover?.(spec, sink, run.abort.signal).catch((err: Error) => {
      log.warn('could not look for the task left by an earlier run; starting it', { error: err.message });
      return undefined;
    });
    if (recovered) log.info('resumed a task left running by an earlier run of this executor', { runner: runner.name });
    const task = recovered ?? (await runner.start(spec, sink, run.abort.signal));
    run.task = task;
    if (run.stopReason) void task.stop(run.stopReason).catch(() => {});
    if (task.pid !== undefined) {
      pidFile = await o.pidFiles.write(run.job.execution_id, run.job.task_key, task.pid).catch((err: Error) => {
        log.warn('could not record the task\'s process group', { error: err.message });
        return undefined;
      });
    }
    return await task.wait();
  } catch (err) {
    log.error('the runner could not start the task', { error: (err as Error).message });
    return { outcome: 'failed', reason: `the executor could not start the task: ${(err as Error).message}` };
  } finally {
    if (pidFile) await o.pidFiles.remove(pidFile).catch(() => {});
  }
}

/** The task's own timeout bounded by the execution's deadline; `expired` if that has passed. */
export function attemptTimeout(timeoutMs: number, deadlineMs: number, now: number): { timeoutMs: number; expired: boolean } {
  let t = timeoutMs > 0 ? timeoutMs : 0;
  if (deadlineMs > 0) {
    const left = deadlineMs - now;
    if (left <= 0) return { timeoutMs: 0, expired: true };
    t = t > 0 ? Math.min(t, left) : left;
  }
  return { timeoutMs: t, expired: false };
}

/**
 * What an attempt needs before it runs, in order: its configuration files (fetched, verified and
 * rendered; a file that is missing, tampered with or does not render fails the task with the
 * reason), then for a serialized job the fleet-wide lock, waited for in line (its token fences).
 */
export async function prepareAttempt(o: {
  run: TaskRun;
  task: TaskToRun;
  source: TaskSource;
  locks: FleetLocks;
  log: Logger;
  onWaiting: (reason: string) => Promise<void>;
}): Promise<{ files?: TaskSpec['files']; lock?: HeldLock } | { failed: TaskResult }> {
  const { run, task } = o;
  const def = task.definition;
  const ref = { executionId: run.job.execution_id, taskKey: run.job.task_key };
  let files: TaskSpec['files'];
  if (task.files.length) {
    try {
      const secretNames = def.env_vars.secrets.map((x) => x.name);
      files = await prepareFiles(task.files, task.args, secretNames, (name) => o.source.fetchFile(ref, name, run.abort.signal));
    } catch (err) {
      const reason = err instanceof TaskFileError ? err.message : `could not prepare the task's files: ${(err as Error).message}`;
      return { failed: { outcome: 'failed', reason } };
    }
  }
  const lockName = def.serialize;
  if (!lockName) return files ? { files } : {};
  const lock = await o.locks.acquire({
    ...ref,
    signal: run.abort.signal,
    onWaiting: (ahead, holder) => o.onWaiting(`waiting for lock ${lockName}${holder ? ` (held by ${holder})` : ''}${ahead ? `, ${ahead} ahead` : ''}`),
  });
  if (!lock) return { failed: { outcome: run.stopReason ?? 'cancelled', reason: run.stopNote ?? 'stopped while waiting for its lock' } };
  o.log.info('holds the serialize lock', { lock: lockName, fencing_token: lock.token });
  return { ...(files ? { files } : {}), lock };
}
