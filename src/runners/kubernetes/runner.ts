// The kubernetes runner: each task runs as a batch/v1 Job in the configured namespace, talking to
// the API server through @kubernetes/client-node (a kubeconfig file, or the pod's service account
// when the executor itself runs in the cluster).

import { join } from 'node:path';
import type { V1Job } from '@kubernetes/client-node';
import type { KubernetesConfig } from '../../config/executor.js';
import { finishedTask } from '../finished.js';
import { CommandError } from '../command-template.js';
import type { LogSink, Runner, RunningTask, TaskSpec } from '../runner.js';
import { describeApiError, KubeApi, loadKubeConfig, statusOf } from './api.js';
import { ANNOTATIONS, buildJob, buildSecret, jobName, taskKeyOf, taskSelector } from './manifests.js';
import { ProgressStore } from './position.js';
import { KubeTask } from './task.js';

export interface KubernetesRunnerOptions {
  config: KubernetesConfig;
  /** Folder where log positions are kept (`<work_dir>/kubernetes`), so a restart resends nothing. */
  stateDir: string;
  /** How long a cancel waits for the Job and its pods to be gone. Default 60000. */
  stopWaitMs?: number;
}

export class KubernetesRunner implements Runner {
  readonly name = 'kubernetes';
  private readonly api: KubeApi;
  private readonly store: ProgressStore;
  private readonly stopWaitMs: number;
  private readonly tasks = new Set<KubeTask>();

  constructor(private readonly opts: KubernetesRunnerOptions) {
    this.api = new KubeApi(loadKubeConfig(opts.config), opts.config.default_namespace);
    this.store = new ProgressStore(opts.stateDir);
    this.stopWaitMs = opts.stopWaitMs ?? 60_000;
  }

  /**
   * Creates the task's Job and, when it has secret arguments, its Secret (the Job is created
   * suspended, the Secret owned by it, then the Job let go), and follows it. A task that cannot
   * run (no image, a secret in the command, the API server refusing the Job or the Secret) comes
   * back as a task that has failed, with the reason.
   */
  async start(spec: TaskSpec, logs: LogSink, signal: AbortSignal): Promise<RunningTask> {
    if (signal.aborted) return finishedTask({ outcome: 'cancelled', reason: 'cancelled' }, logs);
    const name = jobName(spec, taskKeyOf(spec));
    const ns = this.opts.config.default_namespace;
    let manifest: V1Job;
    try {
      manifest = buildJob(spec, this.opts.config, name, ns);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      return finishedTask({ outcome: 'failed', reason: err.message }, logs, err.message);
    }
    let step = `the Job ${name}`;
    try {
      const job = await this.createJob(manifest);
      step = `the Secret of the Job ${name}`;
      await this.finishSetUp(spec, job, () => (step = `to start the Job ${name}`));
    } catch (err) {
      // Nothing may be left behind holding the secrets: the Job goes, and its Secret with it.
      await this.api.deleteJob(name, 'Background').catch(() => {});
      const reason = `Kubernetes refused ${step}: ${describeApiError(err)}`;
      return finishedTask({ outcome: 'failed', reason }, logs, reason);
    }
    logs.write('system', Buffer.from(`[grid: running as Kubernetes Job ${ns}/${name}]\n`, 'utf8'));
    return this.follow(spec, logs, signal, name);
  }

  /**
   * Finds the task's Job left by an earlier run of the executor (by its labels: execution id and
   * task), and follows it from where that run stopped instead of creating another; undefined when
   * there is none. Jobs already being deleted are not taken: their result was handed over.
   */
  async recover(spec: TaskSpec, logs: LogSink, signal: AbortSignal): Promise<RunningTask | undefined> {
    const jobs = (await this.api.listJobs(taskSelector(spec))).filter((j) => !j.metadata?.deletionTimestamp);
    if (jobs.length === 0) return undefined;
    const attempt = (j: V1Job): number => Number(j.metadata?.annotations?.[ANNOTATIONS.attempt] ?? 0);
    jobs.sort((a, b) => attempt(b) - attempt(a));
    const name = jobs[0]!.metadata!.name!;
    // Still suspended: the earlier run stopped before its Secret was made; make it and let go.
    if (jobs[0]!.spec?.suspend) await this.finishSetUp(spec, jobs[0]!);
    const progress = this.store.read(name);
    const ns = this.opts.config.default_namespace;
    const note = progress
      ? `resumed following Kubernetes Job ${ns}/${name} after an executor restart`
      : `resumed following Kubernetes Job ${ns}/${name}; where its log was left is not known here, so it is read again from the start`;
    logs.write('system', Buffer.from(`[grid: ${note}]\n`, 'utf8'));
    return this.follow(spec, logs, signal, name, progress);
  }

  /** Stops following the Jobs still followed (the executor is going away); the Jobs themselves stay. */
  async close(): Promise<void> {
    for (const t of this.tasks) t.detach();
    this.tasks.clear();
  }

  private follow(spec: TaskSpec, logs: LogSink, signal: AbortSignal, job: string, progress?: ReturnType<ProgressStore['read']>): RunningTask {
    const task: KubeTask = new KubeTask({
      api: this.api,
      job,
      logs,
      signal,
      timeoutMs: spec.timeoutMs,
      store: this.store,
      progress,
      stopWaitMs: this.stopWaitMs,
      onDone: () => this.tasks.delete(task),
    });
    this.tasks.add(task);
    return task;
  }

  /**
   * A Job created suspended (the task has secrets): creates its Secret, owned by the Job, then
   * lets the Job start. Again on a Job this attempt set up before, it does what is left.
   */
  private async finishSetUp(spec: TaskSpec, job: V1Job, onResume?: () => void): Promise<void> {
    if (!job.spec?.suspend) return;
    if (Object.keys(spec.secrets).length > 0) {
      try {
        await this.api.createSecret(buildSecret(spec, this.opts.config, job));
      } catch (err) {
        if (statusOf(err) !== 409) throw err; // 409: made for this Job before
      }
    }
    onResume?.();
    await this.api.resumeJob(job.metadata!.name!);
  }

  /** Creates the Job; one that exists already (this attempt, created before) is adopted. */
  private async createJob(manifest: V1Job): Promise<V1Job> {
    try {
      return await this.api.createJob(manifest);
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
      return this.api.readJob(manifest.metadata!.name!);
    }
  }
}

/** `<work_dir>/kubernetes`: where the runner keeps log positions. */
export function kubernetesStateDir(workDir: string): string {
  return join(workDir, 'kubernetes');
}
