// One task running as a Kubernetes Job: watches the Job and its pods until a pod has started (or
// cannot start), follows each started pod's log into the sink, takes the result from the Job's
// conditions and the container's terminated state, and deletes the Job when it is over. Cancel
// and timeout delete the Job with foreground propagation and wait until it is gone.

import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { seconds } from '../runner.js';
import type { LogSink, RunningTask, TaskResult } from '../runner.js';
import { describeApiError, statusOf, type KubeApi } from './api.js';
import { LogRequestError, followLog } from './logs.js';
import { CONTAINER } from './manifests.js';
import type { ProgressStore, TaskProgress } from './position.js';
import { containerEnded, jobEnd, podStart, taskResult, type JobEnd } from './status.js';

type StopReason = 'cancelled' | 'timed_out';

export interface KubeTaskOptions {
  api: KubeApi;
  job: string;
  logs: LogSink;
  signal: AbortSignal;
  /** The runner's own limit (besides the Job's activeDeadlineSeconds); 0 = none. */
  timeoutMs: number;
  store: ProgressStore;
  /** What an earlier run of the executor delivered (recover). */
  progress?: TaskProgress;
  /** How long stop() waits for the Job and its pods to be gone. */
  stopWaitMs: number;
  /** Called once the task is over, whatever the outcome. */
  onDone?: () => void;
}

type Next =
  | { kind: 'ended'; job: V1Job; end: JobEnd }
  | { kind: 'pod'; pod: V1Pod }
  | { kind: 'start-failed'; pod: V1Pod; reason: string }
  | { kind: 'gone' };

/** How long to wait for a pod to show its container ended after its log stream ended, before reading the log again. */
const LOG_RECONNECT_MS = 2000;

export class KubeTask implements RunningTask {
  private readonly done: Promise<TaskResult>;
  private readonly progress: TaskProgress;
  /** Aborts every watch and log stream of this task. */
  private readonly halt = new AbortController();
  private stopReason: StopReason | undefined;
  private stopping: Promise<void> | undefined;
  private over = false;
  private detached = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly onAbort = (): void => void this.stop('cancelled');

  constructor(private readonly o: KubeTaskOptions) {
    this.progress = o.progress ?? { donePods: [] };
    if (o.timeoutMs > 0) this.timer = setTimeout(() => void this.stop('timed_out'), o.timeoutMs);
    o.signal.addEventListener('abort', this.onAbort, { once: true });
    this.done = this.run();
    if (o.signal.aborted) this.onAbort();
  }

  get jobName(): string {
    return this.o.job;
  }

  wait(): Promise<TaskResult> {
    return this.done;
  }

  /** Deletes the Job (foreground: its pods first) and resolves once it is gone. Idempotent. */
  stop(reason: StopReason): Promise<void> {
    if (!this.stopping) {
      if (!this.over) {
        this.stopReason = reason;
        this.note(`${this.describe(reason)}; deleting Kubernetes Job ${this.o.job} and its pods`);
      }
      this.stopping = (async () => {
        if (this.over) return;
        try {
          await this.o.api.deleteJob(this.o.job, 'Foreground');
        } catch (err) {
          this.note(`could not delete Kubernetes Job ${this.o.job}: ${describeApiError(err)}`);
        }
        await this.waitGone();
        this.halt.abort();
      })();
    }
    return this.stopping.then(() => this.done).then(() => undefined);
  }

  /**
   * Stops following the Job without touching it (the executor is shutting down): the Job runs on,
   * and the next run of the executor recovers it. wait() then reports the task as not followed.
   */
  detach(): void {
    if (this.over || this.stopReason) return;
    this.detached = true;
    this.halt.abort();
  }

  private async run(): Promise<TaskResult> {
    let result: TaskResult;
    let keepJob = false;
    try {
      result = (await this.follow()) ?? this.stoppedResult();
    } catch (err) {
      if (this.detached) {
        result = this.stoppedResult();
      } else if (this.stopReason) {
        result = this.stoppedResult();
      } else {
        // The API server cannot be read any more: the Job is left to its deadline and TTL.
        keepJob = true;
        result = { outcome: 'failed', reason: `lost track of Kubernetes Job ${this.o.job}: ${describeApiError(err)}` };
        this.note(result.reason);
      }
    }
    if (this.stopReason) {
      result = this.stoppedResult();
      await this.stopping;
    }
    this.over = true;
    clearTimeout(this.timer);
    this.o.signal.removeEventListener('abort', this.onAbort);
    if (this.detached) {
      this.o.logs.finish?.();
      this.o.onDone?.();
      return { outcome: 'failed', reason: `the executor stopped following Kubernetes Job ${this.o.job}, which runs on` };
    }
    if (!this.stopReason && !keepJob) {
      // Its result is taken: the Job (and the Secret it owns) is not needed any more, and a Job
      // left behind would be picked up again by recover() for the task's next attempt.
      await this.o.api.deleteJob(this.o.job, 'Background').catch((err: unknown) => {
        this.note(`could not delete Kubernetes Job ${this.o.job}: ${describeApiError(err)}; ttlSecondsAfterFinished will`);
      });
    }
    this.halt.abort();
    this.o.store.remove(this.o.job);
    this.o.logs.finish?.();
    this.o.onDone?.();
    return result;
  }

  private stoppedResult(): TaskResult {
    const reason = this.stopReason ?? 'cancelled';
    return { outcome: reason, reason: this.describe(reason) };
  }

  /** The task's result, or undefined once it is being stopped. */
  private async follow(): Promise<TaskResult | undefined> {
    for (;;) {
      if (this.stopReason) return undefined;
      const next = await this.next();
      if (this.stopReason || !next) return undefined;
      switch (next.kind) {
        case 'gone':
          return { outcome: 'failed', reason: `Kubernetes Job ${this.o.job} was deleted by someone else` };
        case 'start-failed':
          // run() deletes the Job: left alone it would wait for an image or a node forever.
          this.note(`${next.reason}; deleting Kubernetes Job ${this.o.job}`);
          return { outcome: 'failed', reason: next.reason };
        case 'pod':
          await this.followPod(next.pod);
          break;
        case 'ended': {
          // Pods that ran before the Job's status said so: deliver their logs first.
          const { pods } = await this.o.api.listPods(this.o.job);
          pods.sort(byCreation);
          for (const pod of pods) {
            if (this.stopReason) return undefined;
            if (!this.progress.donePods.includes(pod.metadata!.name!) && podStart(pod).kind === 'started') await this.followPod(pod);
          }
          return taskResult(next.job, next.end, pods[pods.length - 1]);
        }
      }
    }
  }

  /** Watches the Job and its pods until one of them says what happens next. */
  private async next(): Promise<Next | undefined> {
    const ctl = new AbortController();
    const onHalt = (): void => ctl.abort();
    this.halt.signal.addEventListener('abort', onHalt);
    try {
      const jobSide = (async (): Promise<Next | undefined> => {
        for await (const ev of this.o.api.watchJob(this.o.job, ctl.signal)) {
          if (ev.type === 'DELETED') return { kind: 'gone' };
          const end = jobEnd(ev.object);
          if (end) return { kind: 'ended', job: ev.object, end };
        }
        return undefined;
      })();
      const podSide = (async (): Promise<Next | undefined> => {
        for await (const ev of this.o.api.watchPods(this.o.job, ctl.signal)) {
          const pod = ev.object;
          if (ev.type === 'DELETED' || this.progress.donePods.includes(pod.metadata?.name ?? '')) continue;
          const start = podStart(pod);
          if (start.kind === 'started') return { kind: 'pod', pod };
          if (start.kind === 'failed') return { kind: 'start-failed', pod, reason: start.reason };
        }
        return undefined;
      })();
      // Whichever side answers first; the other is aborted (and its rejection, if any, dropped).
      const first = await Promise.race([jobSide, podSide]);
      jobSide.catch(() => {});
      podSide.catch(() => {});
      return first;
    } finally {
      ctl.abort();
      this.halt.signal.removeEventListener('abort', onHalt);
    }
  }

  /** Delivers one pod's log from where it was left until its container has ended. */
  private async followPod(pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    for (;;) {
      if (this.halt.signal.aborted) return;
      try {
        this.progress.position = await followLog({
          kc: this.o.api.kc,
          namespace: this.o.api.namespace,
          pod: name,
          container: CONTAINER,
          sink: this.o.logs,
          position: this.progress.position,
          signal: this.halt.signal,
          onDelivered: (position) => {
            this.progress.position = position;
            this.save();
          },
        });
      } catch (err) {
        if (!(err instanceof LogRequestError) || this.halt.signal.aborted) throw err;
        if (err.statusCode === 404) break; // the pod is gone
        // 400: the container is not running yet, or no longer there to read; wait for the pod.
      }
      if (this.halt.signal.aborted) return; // stopped or detached: not read to its end
      if (await this.podSettled(name)) break;
    }
    this.progress.donePods.push(name);
    this.save();
  }

  /**
   * After a log stream ended: true once the pod's container has ended or the pod is gone (its
   * log is complete); false when it still runs after a short wait (the stream was cut: read on).
   */
  private async podSettled(name: string): Promise<boolean> {
    const { pods, resourceVersion } = await this.o.api.listPods(this.o.job);
    const pod = pods.find((p) => p.metadata?.name === name);
    if (!pod || containerEnded(pod)) return true;
    const ctl = new AbortController();
    const onHalt = (): void => ctl.abort();
    this.halt.signal.addEventListener('abort', onHalt);
    const timer = setTimeout(() => ctl.abort(), LOG_RECONNECT_MS);
    try {
      for await (const ev of this.o.api.watchPods(this.o.job, ctl.signal, resourceVersion)) {
        if (ev.object.metadata?.name !== name) continue;
        if (ev.type === 'DELETED' || containerEnded(ev.object)) return true;
      }
      return false; // still running after a while: the stream was cut, read on
    } finally {
      clearTimeout(timer);
      this.halt.signal.removeEventListener('abort', onHalt);
    }
  }

  /** Resolves once the Job is gone (foreground deletion removes its pods first), or after stopWaitMs. */
  private async waitGone(): Promise<void> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.o.stopWaitMs);
    try {
      // Read first, then watch from that version: a deletion in between is not missed.
      let job: V1Job;
      try {
        job = await this.o.api.readJob(this.o.job);
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw err;
      }
      for await (const ev of this.o.api.watchJob(this.o.job, ctl.signal, job.metadata?.resourceVersion)) {
        if (ev.type === 'DELETED') return;
      }
      this.note(`Kubernetes Job ${this.o.job} is still there ${seconds(this.o.stopWaitMs)} after it was deleted`);
    } catch {
      // cannot read or watch it: nothing more to wait for here
    } finally {
      clearTimeout(timer);
    }
  }

  private save(): void {
    try {
      this.o.store.write(this.o.job, this.progress);
    } catch {
      // best effort: a restart would then resend some output
    }
  }

  private describe(reason: StopReason): string {
    if (reason === 'cancelled') return 'cancelled';
    return this.o.timeoutMs > 0 ? `timed out after ${seconds(this.o.timeoutMs)}` : 'timed out';
  }

  private note(text: string): void {
    if (this.over) return;
    this.o.logs.write('system', Buffer.from(`[grid: ${text}]\n`, 'utf8'));
  }
}

function byCreation(a: V1Pod, b: V1Pod): number {
  const t = (p: V1Pod): number => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
  return t(a) - t(b);
}
