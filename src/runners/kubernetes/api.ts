// The Kubernetes API calls the runner makes, in one place: this list is what the Role in
// config/kubernetes/ grants, verb for verb (jobs: create get list watch patch delete; pods: list
// watch; pods/log: get; secrets: create). test/unit/kube-rbac.test.ts reads the calls from this
// folder's code and compares them with the Role. Secrets are only ever created, each owned by its
// Job from birth: the garbage collector deletes it with the Job, so the executor needs no right to
// change or delete a Secret, its own or anyone else's.

import { ApiException, BatchV1Api, CoreV1Api, KubeConfig, type V1Job, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import type { KubernetesConfig } from '../../config/executor.js';
import { watchEvents, type WatchEvent } from './watch.js';

/** Loads the kubeconfig the executor was configured with, or the pod's service account. */
export function loadKubeConfig(cfg: Pick<KubernetesConfig, 'kube_config' | 'kube_context'>): KubeConfig {
  const kc = new KubeConfig();
  if (cfg.kube_config === '') {
    if (!process.env['KUBERNETES_SERVICE_HOST']) throw new Error('not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set): set kubernetes.kube_config to a kubeconfig file');
    kc.loadFromCluster();
  }
  else kc.loadFromFile(cfg.kube_config);
  if (cfg.kube_context !== '') {
    if (!kc.getContextObject(cfg.kube_context)) throw new Error(`kube_context "${cfg.kube_context}" is not in ${cfg.kube_config || 'the in-cluster config'}`);
    kc.setCurrentContext(cfg.kube_context);
  }
  if (!kc.getCurrentCluster()) throw new Error(`no current cluster in ${cfg.kube_config || 'the in-cluster config'}`);
  return kc;
}

/** The HTTP status of a failed API call, when it is one. */
export function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** A failed API call in words, without the response headers the client puts in its message. */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    let message = '';
    try {
      message = (JSON.parse(String(err.body)) as { message?: string }).message ?? '';
    } catch {
      message = typeof err.body === 'string' ? err.body : '';
    }
    return `HTTP ${err.code}${message ? `: ${message}` : ''}`;
  }
  return (err as Error)?.message ?? String(err);
}

export type Propagation = 'Foreground' | 'Background';

export class KubeApi {
  readonly batch: BatchV1Api;
  readonly core: CoreV1Api;

  constructor(
    readonly kc: KubeConfig,
    readonly namespace: string,
  ) {
    this.batch = kc.makeApiClient(BatchV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  createJob(body: V1Job): Promise<V1Job> {
    return this.batch.createNamespacedJob({ namespace: this.namespace, body });
  }

  readJob(name: string): Promise<V1Job> {
    return this.batch.readNamespacedJob({ namespace: this.namespace, name });
  }

  async listJobs(labelSelector: string): Promise<V1Job[]> {
    return (await this.batch.listNamespacedJob({ namespace: this.namespace, labelSelector })).items;
  }

  /** Deletes the Job and, through the propagation policy, its pods; a Job already gone is fine. */
  async deleteJob(name: string, propagationPolicy: Propagation): Promise<void> {
    try {
      await this.batch.deleteNamespacedJob({ namespace: this.namespace, name, propagationPolicy, body: { propagationPolicy } });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  /** From `resourceVersion` on, or (without) starting with the Job as it is now. */
  watchJob(name: string, signal: AbortSignal, resourceVersion?: string): AsyncGenerator<WatchEvent<V1Job>> {
    return watchEvents<V1Job>(this.kc, `/apis/batch/v1/namespaces/${this.namespace}/jobs`, { fieldSelector: `metadata.name=${name}` }, signal, resourceVersion);
  }

  /** The pods of a Job now, and the resource version to watch them from. */
  async listPods(job: string): Promise<{ pods: V1Pod[]; resourceVersion?: string }> {
    const list = await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: `job-name=${job}` });
    return { pods: list.items, resourceVersion: list.metadata?.resourceVersion };
  }

  /** The pods of a Job, by the `job-name` label the Job controller puts on them. */
  watchPods(job: string, signal: AbortSignal, resourceVersion?: string): AsyncGenerator<WatchEvent<V1Pod>> {
    return watchEvents<V1Pod>(this.kc, `/api/v1/namespaces/${this.namespace}/pods`, { labelSelector: `job-name=${job}` }, signal, resourceVersion);
  }

  /** A Secret for one task, created with its Job as owner (ownerReferences in the body). */
  createSecret(body: V1Secret): Promise<V1Secret> {
    return this.core.createNamespacedSecret({ namespace: this.namespace, body });
  }

  /** Lets a Job created suspended (its Secret not there yet) start its pod. */
  async resumeJob(name: string): Promise<void> {
    // The client sends patches as application/json-patch+json.
    await this.batch.patchNamespacedJob({ namespace: this.namespace, name, body: [{ op: 'replace', path: '/spec/suspend', value: false }] });
  }
}
