// Reading a Job's and its pod's status: has the pod started, failed to start, or ended, and what
// the task's result is, with the reason in words. Pure functions over the API's JSON.

import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { TaskResult } from '../runner.js';
import { CONTAINER } from './manifests.js';

/** Container waiting reasons that mean the pod will not start without someone fixing something. */
const IMAGE_PULL = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);
const CANNOT_CREATE = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

export type PodStart =
  | { kind: 'pending' }
  /** The container runs or has run: its log can be read. */
  | { kind: 'started' }
  | { kind: 'failed'; reason: string };

function containerStatus(pod: V1Pod) {
  const all = pod.status?.containerStatuses ?? [];
  return all.find((c) => c.name === CONTAINER) ?? all[0];
}

export function podStart(pod: V1Pod): PodStart {
  const phase = pod.status?.phase;
  const cs = containerStatus(pod);
  if (cs?.state?.running || cs?.state?.terminated || phase === 'Running' || phase === 'Succeeded' || phase === 'Failed') {
    return { kind: 'started' };
  }
  const waiting = cs?.state?.waiting;
  if (waiting?.reason && IMAGE_PULL.has(waiting.reason)) {
    return { kind: 'failed', reason: `image pull failed: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
  }
  if (waiting?.reason && CANNOT_CREATE.has(waiting.reason)) {
    return { kind: 'failed', reason: `container cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
  }
  const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (sched?.status === 'False' && sched.reason === 'Unschedulable') {
    return { kind: 'failed', reason: `pod unschedulable: ${sched.message ?? 'no node can run it'}` };
  }
  return { kind: 'pending' };
}

/** True once the task container has ended (or the pod is over): its log will not grow. */
export function containerEnded(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return Boolean(containerStatus(pod)?.state?.terminated) || phase === 'Succeeded' || phase === 'Failed';
}

export type JobEnd = { kind: 'complete' } | { kind: 'failed'; reason: string; message: string };

/** The Job's end from its conditions, or undefined while it runs. */
export function jobEnd(job: V1Job): JobEnd | undefined {
  const conds = job.status?.conditions ?? [];
  if (conds.some((c) => c.type === 'Complete' && c.status === 'True')) return { kind: 'complete' };
  const failed = conds.find((c) => c.type === 'Failed' && c.status === 'True');
  if (failed) return { kind: 'failed', reason: failed.reason ?? 'Failed', message: failed.message ?? '' };
  return undefined;
}

/** The task's result from the Job's end and its last pod (when there is one to look at). */
export function taskResult(job: V1Job, end: JobEnd, pod: V1Pod | undefined): TaskResult {
  const term = pod ? containerStatus(pod)?.state?.terminated : undefined;
  if (end.kind === 'complete') {
    const code = term?.exitCode ?? 0;
    return { outcome: 'succeeded', exitCode: code, reason: `exit code ${code}` };
  }
  if (end.reason === 'DeadlineExceeded') {
    const s = job.spec?.activeDeadlineSeconds;
    return { outcome: 'timed_out', exitCode: term?.exitCode, reason: s ? `deadline exceeded after ${s}s` : 'deadline exceeded' };
  }
  if (term) {
    if (term.reason === 'OOMKilled') return { outcome: 'failed', exitCode: term.exitCode, reason: `OOMKilled (exit code ${term.exitCode})` };
    const why = term.reason ? ` (${term.reason})` : '';
    const retries = end.reason === 'BackoffLimitExceeded' && (job.spec?.backoffLimit ?? 0) > 0 ? `, after ${job.spec!.backoffLimit! + 1} pods` : '';
    return { outcome: 'failed', exitCode: term.exitCode, reason: `exit code ${term.exitCode}${why}${retries}` };
  }
  return { outcome: 'failed', reason: `Job failed: ${end.reason}${end.message ? `: ${end.message}` : ''}` };
}
