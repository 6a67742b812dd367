// config/kubernetes/: every document is a Kubernetes object, the pieces refer to each other, the
// executor config in the ConfigMap loads. Plus the runner's pure parts: Job names, log
// positions, pod and Job status.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadExecutorConfig } from '../../src/config/executor.js';
import { jobName } from '../../src/runners/kubernetes/manifests.js';
import { parseNanos, sinceTimeOf } from '../../src/runners/kubernetes/position.js';
import { jobEnd, podStart, taskResult } from '../../src/runners/kubernetes/status.js';
import { loadManifests } from '../harness/fake-kube-rbac.js';

const NAMESPACED = new Set(['ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'Service']);
const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('config/kubernetes manifests', () => {
  const docs = loadManifests().map((m) => m.doc);
  const find = (kind: string, name?: string) => docs.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name));

  it('parse as Kubernetes objects with apiVersion, kind and a valid metadata.name', () => {
    expect(docs.length).toBeGreaterThanOrEqual(8);
    for (const d of docs) {
      expect(typeof d.apiVersion, JSON.stringify(d)).toBe('string');
      expect(d.apiVersion).toMatch(/^([a-z0-9.]+\/)?v\d+((alpha|beta)\d+)?$/);
      expect(typeof d.kind).toBe('string');
      expect(d.metadata.name).toMatch(DNS1123);
      if (NAMESPACED.has(d.kind)) expect(d.metadata.namespace, `${d.kind}/${d.metadata.name}`).toBe('grid');
    }
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(
      [
        'Namespace/grid',
        'ServiceAccount/grid-executor', 'ServiceAccount/grid-controller', 'ServiceAccount/grid-job', 'Role/grid-executor', 'RoleBinding/grid-executor',
        'ConfigMap/grid-executor', 'PersistentVolumeClaim/grid-executor-state', 'Deployment/grid-executor',
        'ConfigMap/grid-controller', 'Deployment/grid-controller', 'Service/grid-controller',
      ].sort(),
    );
  });

  it('bind the Role to the executor\'s ServiceAccount, which the Deployment runs as', () => {
    const binding = find('RoleBinding')!;
    expect(binding['roleRef']).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'grid-executor' });
    expect(binding['subjects']).toEqual([{ kind: 'ServiceAccount', name: 'grid-executor', namespace: 'grid' }]);
    expect(find('ServiceAccount', 'grid-executor')).toBeDefined();
    const deploy = find('Deployment', 'grid-executor') as unknown as { spec: { template: { spec: { serviceAccountName: string; volumes: Array<Record<string, { name?: string; claimName?: string }>> } } } };
    expect(deploy.spec.template.spec.serviceAccountName).toBe('grid-executor');
    const vols = deploy.spec.template.spec.volumes;
    expect(vols.find((v) => v['configMap'])?.['configMap']?.name).toBe(find('ConfigMap', 'grid-executor')!.metadata.name);
    expect(vols.find((v) => v['persistentVolumeClaim'])?.['persistentVolumeClaim']?.claimName).toBe(find('PersistentVolumeClaim')!.metadata.name);
  });

  it('carry an executor config that loads (unknown keys are rejected) and runs Jobs as the grid-job ServiceAccount', () => {
    const cm = find('ConfigMap', 'grid-executor') as unknown as { data: Record<string, string> };
    const dir = mkdtempSync(join(tmpdir(), 'grid-kube-cm-'));
    try {
      const file = join(dir, 'executor.json');
      writeFileSync(file, cm.data['executor.json']!);
      const cfg = loadExecutorConfig({ file, env: {}, cwd: dir });
      expect(cfg.runners).toEqual(['kubernetes']);
      expect(cfg.kubernetes.kube_config).toBe(''); // in-cluster credentials
      expect(cfg.kubernetes.default_namespace).toBe('grid');
      expect(cfg.kubernetes.service_account_name).toBe('grid-job');
      expect(find('ServiceAccount', 'grid-job')).toMatchObject({ automountServiceAccountToken: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The Role's rules are checked against the runner's code by kube-rbac.test.ts, and against the
  // requests it sends to the fake API server by kube-runner.test.ts.
});

describe('kubernetes runner: names and positions', () => {
  it('Job names are DNS-1123 labels of at most 63 characters, stable per task attempt', () => {
    const a = jobName({ executionId: '01JABCDEFGHJKMNPQRSTVWXYZ0', attempt: 1 }, 'EXEC1');
    expect(a).toMatch(DNS1123);
    expect(a).toMatch(/^grid-01jabcdefghjkmnpqrstvwxyz0-[0-9a-f]{8}-1$/);
    expect(jobName({ executionId: '01JABCDEFGHJKMNPQRSTVWXYZ0', attempt: 1 }, 'EXEC1')).toBe(a);
    expect(jobName({ executionId: '01JABCDEFGHJKMNPQRSTVWXYZ0', attempt: 2 }, 'EXEC1')).not.toBe(a);
    expect(jobName({ executionId: '01JABCDEFGHJKMNPQRSTVWXYZ0', attempt: 1 }, 'pool:edge')).not.toBe(a);
    const long = jobName({ executionId: 'X'.repeat(200) + '_', attempt: 123 }, 'k');
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(DNS1123);
  });

  it('log timestamps compare as nanoseconds (Go trims trailing zeros) and resume from the whole second', () => {
    // As strings ".1Z" sorts after ".12Z"; as times 0.1 s comes first.
    expect('2026-01-02T03:04:05.1Z' > '2026-01-02T03:04:05.12Z').toBe(true);
    expect(parseNanos('2026-01-02T03:04:05.1Z')! < parseNanos('2026-01-02T03:04:05.12Z')!).toBe(true);
    expect(parseNanos('2026-01-02T03:04:05Z')).toBe(parseNanos('2026-01-02T03:04:05.000000000Z'));
    expect(parseNanos('not a time')).toBeUndefined();
    expect(sinceTimeOf('2026-01-02T03:04:05.987654321Z')).toBe('2026-01-02T03:04:05Z');
  });
});

describe('kubernetes runner: status in words', () => {
  const waiting = (reason: string, message: string) => ({ status: { phase: 'Pending', containerStatuses: [{ name: 'task', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message } } }] } });
  const terminated = (exitCode: number, reason: string) => ({ status: { phase: 'Failed', containerStatuses: [{ name: 'task', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, reason } } }] } });

  it('tells a pod that cannot start from one that is still on its way', () => {
    expect(podStart(waiting('ContainerCreating', '') as never)).toEqual({ kind: 'pending' });
    expect(podStart(waiting('ImagePullBackOff', 'Back-off pulling image "x"') as never)).toEqual({ kind: 'failed', reason: 'image pull failed: ImagePullBackOff: Back-off pulling image "x"' });
    expect(podStart({ status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available' }] } } as never)).toEqual({
      kind: 'failed',
      reason: 'pod unschedulable: 0/3 nodes are available',
    });
    expect(podStart({ status: { phase: 'Running' } } as never)).toEqual({ kind: 'started' });
  });

  it('takes the result from the Job\'s conditions and the container\'s end', () => {
    const failedJob = (reason: string) => ({ spec: { activeDeadlineSeconds: 30, backoffLimit: 0 }, status: { conditions: [{ type: 'Failed', status: 'True', reason, message: 'm' }] } });
    const complete = { status: { conditions: [{ type: 'Complete', status: 'True' }] } };
    expect(jobEnd({ status: {} } as never)).toBeUndefined();
    expect(taskResult(complete as never, jobEnd(complete as never)!, undefined)).toEqual({ outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' });
    const dl = failedJob('DeadlineExceeded');
    expect(taskResult(dl as never, jobEnd(dl as never)!, undefined)).toEqual({ outcome: 'timed_out', exitCode: undefined, reason: 'deadline exceeded after 30s' });
    const bl = failedJob('BackoffLimitExceeded');
    expect(taskResult(bl as never, jobEnd(bl as never)!, terminated(3, 'Error') as never)).toEqual({ outcome: 'failed', exitCode: 3, reason: 'exit code 3 (Error)' });
    expect(taskResult(bl as never, jobEnd(bl as never)!, terminated(137, 'OOMKilled') as never)).toEqual({ outcome: 'failed', exitCode: 137, reason: 'OOMKilled (exit code 137)' });
    expect(taskResult(bl as never, jobEnd(bl as never)!, undefined)).toEqual({ outcome: 'failed', reason: 'Job failed: BackoffLimitExceeded: m' });
  });
});
