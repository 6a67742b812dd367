// The kubernetes runner: tasks as batch/v1 Jobs.

export { KubernetesRunner, kubernetesStateDir, type KubernetesRunnerOptions } from './runner.js';
export { jobName, buildJob, buildSecret, taskSelector, LABELS, ANNOTATIONS, CONTAINER, TASK_KEY_ENV } from './manifests.js';
