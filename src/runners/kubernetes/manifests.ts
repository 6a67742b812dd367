// The Kubernetes objects the runner creates for one task: a batch/v1 Job and, when the task has
// secret arguments, a Secret the Job's pod reads them from. Pure functions, no I/O.

import { createHash } from 'node:crypto';
import type { V1EnvVar, V1Job, V1Secret } from '@kubernetes/client-node';
import type { KubernetesConfig } from '../../config/executor.js';
import { CommandError, renderTemplate } from '../command-template.js';
import { secretInCommand } from '../../domain/env-rules.js';
import type { TaskSpec } from '../runner.js';
import { containerResources, podNodeSelector, podTolerations, taskSecurity } from './pod-spec.js';

export const LABELS = {
  executionId: 'grid.io/execution-id',
  job: 'grid.io/job',
  executor: 'grid.io/executor',
  /** A short hash of the task key: one execution may give one executor several pool tasks. */
  task: 'grid.io/task',
} as const;
export const ANNOTATIONS = {
  attempt: 'grid.io/attempt',
  executorName: 'grid.io/executor-name',
  taskKey: 'grid.io/task-key',
} as const;
/** The name of the task's only container; logs are read from it. */
export const CONTAINER = 'task';
/** Set by the worker: the task's key (the executor id for fan-out tasks, the pool's key otherwise). */
export const TASK_KEY_ENV = 'GRID_TASK_KEY';

/** The task key of a spec: what the worker passed, or the executor id (a fan-out task's key). */
export function taskKeyOf(spec: TaskSpec): string {
  return spec.env[TASK_KEY_ENV] || spec.executorId;
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/**
 * `grid-<execution id>-<hash of the task key>-<attempt>`, lower-cased and cut to a DNS-1123 label
 * (≤ 63 characters): the same task attempt always gets the same name, so creating it twice is
 * harmless (the second create answers 409 and the runner adopts the Job).
 */
export function jobName(spec: Pick<TaskSpec, 'executionId' | 'attempt'>, taskKey: string): string {
  const id = spec.executionId.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '') || 'x';
  const suffix = `-${shortHash(taskKey)}-${spec.attempt}`;
  return `grid-${id}`.slice(0, 63 - suffix.length).replace(/-+$/, '') + suffix;
}

/** A label value: at most 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric. */
export function labelValue(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/** The label selector that finds every Job of one task, whatever the attempt that created it. */
export function taskSelector(spec: TaskSpec): string {
  return `${LABELS.executionId}=${labelValue(spec.executionId)},${LABELS.task}=${shortHash(taskKeyOf(spec))}`;
}

function gridLabels(spec: TaskSpec, cfg: KubernetesConfig): Record<string, string> {
  return {
    ...cfg.labels,
    [LABELS.executionId]: labelValue(spec.executionId),
    [LABELS.job]: labelValue(spec.definition.name),
    [LABELS.executor]: labelValue(spec.executorId),
    [LABELS.task]: shortHash(taskKeyOf(spec)),
  };
}

/** The container's command: `command` rendered per element, or `/bin/sh -c` for a `shell` script. */
export function containerCommand(spec: TaskSpec): string[] | undefined {
  const def = spec.definition;
  if (def.shell !== undefined && def.shell.trim() !== '') return ['/bin/sh', '-c', def.shell];
  if (!def.command || def.command.length === 0) return undefined; // the image's entrypoint
  // Never in a spec stored by the API server (nor in argv): secrets go by reference in the env.
  const secret = secretInCommand(def.command, [...Object.keys(spec.secrets), ...def.env_vars.secrets.map((s) => s.name)]);
  if (secret) throw new CommandError(`${secret.path}: ${secret.message}`);
  return def.command.map((part) => renderTemplate(part, spec.args));
}

/** The container's environment: arguments by value, secrets only by reference to the Secret. */
export function containerEnv(spec: TaskSpec, secretName: string): V1EnvVar[] {
  const env = new Map<string, V1EnvVar>();
  const secret = new Set(Object.keys(spec.secrets));
  for (const [name, value] of Object.entries(spec.args)) if (!secret.has(name)) env.set(name, { name, value });
  for (const name of secret) env.set(name, { name, valueFrom: { secretKeyRef: { name: secretName, key: name } } });
  for (const [name, value] of Object.entries(spec.env)) env.set(name, { name, value });
  env.set('GRID_EXECUTION_ID', { name: 'GRID_EXECUTION_ID', value: spec.executionId });
  env.set('GRID_EXECUTOR', { name: 'GRID_EXECUTOR', value: spec.executorName });
  env.set('GRID_ATTEMPT', { name: 'GRID_ATTEMPT', value: String(spec.attempt) });
  return [...env.values()];
}

/** activeDeadlineSeconds: the task's timeout, the executor's default, or the smaller of both. */
export function activeDeadline(spec: TaskSpec, cfg: KubernetesConfig): number | undefined {
  const fromTask = spec.timeoutMs > 0 ? Math.max(1, Math.ceil(spec.timeoutMs / 1000)) : 0;
  const fromCfg = cfg.job_active_deadline_seconds;
  if (fromTask > 0 && fromCfg > 0) return Math.min(fromTask, fromCfg);
  return fromTask || fromCfg || undefined;
}

export function buildJob(spec: TaskSpec, cfg: KubernetesConfig, name: string, namespace: string): V1Job {
  const image = spec.definition.image_name;
  if (!image) throw new CommandError(`job "${spec.definition.name}" has no image_name: the kubernetes runner needs a container image`);
  const labels = gridLabels(spec, cfg);
  const command = containerCommand(spec);
  const security = taskSecurity(spec.definition);
  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace,
      labels,
      annotations: {
        [ANNOTATIONS.attempt]: String(spec.attempt),
        [ANNOTATIONS.executorName]: spec.executorName,
        [ANNOTATIONS.taskKey]: taskKeyOf(spec),
      },
    },
    spec: {
      // A task with secret arguments starts suspended: its Secret, which must name the Job's uid
      // as owner, is created once the Job exists, and only then is the Job let go (runner.ts).
      suspend: Object.keys(spec.secrets).length > 0 ? true : undefined,
      backoffLimit: cfg.job_retries,
      activeDeadlineSeconds: activeDeadline(spec, cfg),
      ttlSecondsAfterFinished: cfg.ttl_seconds_after_finished,
      template: {
        metadata: { labels, annotations: { ...cfg.job_pod_annotations } },
        spec: {
          restartPolicy: 'Never',
          serviceAccountName: cfg.service_account_name || undefined,
          imagePullSecrets: cfg.image_pull_secrets.length ? cfg.image_pull_secrets.map((n) => ({ name: n })) : undefined,
          nodeSelector: podNodeSelector(spec.definition),
          tolerations: podTolerations(spec.definition),
          securityContext: security.pod,
          containers: [
            {
              name: CONTAINER,
              image,
              command,
              env: containerEnv(spec, name),
              resources: containerResources(spec.definition, cfg),
              securityContext: security.container,
            },
          ],
        },
      },
    },
  };
  return JSON.parse(JSON.stringify(job)) as V1Job; // drops the undefined fields
}

/**
 * The Secret holding the task's secret arguments, owned by its Job from the start: the garbage
 * collector deletes it with the Job, and the runner never has to delete or change a Secret.
 */
export function buildSecret(spec: TaskSpec, cfg: KubernetesConfig, job: V1Job): V1Secret {
  // No blockOwnerDeletion: setting it needs `update` on jobs/finalizers where the
  // OwnerReferencesPermissionEnforcement admission plugin runs, and a Secret outliving its Job's
  // foreground deletion by a moment costs nothing (the collector deletes it right after).
  const owner = { apiVersion: 'batch/v1', kind: 'Job', name: job.metadata!.name!, uid: job.metadata!.uid! };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: job.metadata!.name!, namespace: job.metadata!.namespace, labels: gridLabels(spec, cfg), ownerReferences: [owner] },
    type: 'Opaque',
    stringData: { ...spec.secrets },
  };
}
