// The kubernetes runner against the fake API server (test/harness/fake-kube.ts), through
// @kubernetes/client-node and a kubeconfig like any cluster: Job and Secret specs, logs, results
// and reasons, cancel and timeout (foreground deletion), recover after a restart, and the RBAC
// verbs the runner's requests used compared with the Role in config/kubernetes/.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubernetesConfig } from '../../src/config/executor.js';
import type { JobDefinition } from '../../src/domain/job.js';
import { KubernetesRunner, buildJob, jobName } from '../../src/runners/kubernetes/index.js';
import type { LogSink, LogStream, TaskSpec } from '../../src/runners/runner.js';
import { FakeKube, rbacVerbs, type RecordedRequest } from '../harness/fake-kube.js';
import { KUBE_VERBS_FILE, roleVerbs } from '../harness/fake-kube-rbac.js';
import { restrictedViolations } from '../harness/pod-security.js';
import { validateJobDefinition } from '../../src/domain/jobdef.js';

const NS = 'grid-jobs';

class Collect implements LogSink {
  chunks: Array<{ stream: LogStream; text: string }> = [];
  finished = 0;
  private waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  write(stream: LogStream, data: Uint8Array): void {
    this.chunks.push({ stream, text: Buffer.from(data).toString('utf8') });
    this.waiters = this.waiters.filter((w) => (w.re.test(this.text()) ? (w.resolve(), false) : true));
  }
  finish(): void {
    this.finished++;
  }
  text(stream?: LogStream): string {
    return this.chunks.filter((c) => !stream || c.stream === stream).map((c) => c.text).join('');
  }
  until(re: RegExp): Promise<void> {
    if (re.test(this.text())) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ re, resolve }));
  }
}

let fake: FakeKube;
let dir: string;
let kubeconfig: string;
let seq = 0;

beforeAll(async () => {
  fake = await FakeKube.start();
  dir = mkdtempSync(join(tmpdir(), 'grid-kube-runner-'));
  kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'), NS);
});

afterAll(async () => {
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function config(over: Partial<KubernetesConfig> = {}): KubernetesConfig {
  return {
    kube_config: kubeconfig,
    kube_context: '',
    default_namespace: NS,
    service_account_name: 'grid-job',
    job_active_deadline_seconds: 0,
    job_retries: 0,
    job_pod_annotations: { 'example.com/team': 'ops' },
    labels: { 'app.kubernetes.io/managed-by': 'grid' },
    image_pull_secrets: ['registry-credentials'],
    resources: { requests: { cpu: '100m' }, limits: { memory: '256Mi' } },
    ttl_seconds_after_finished: 600,
    ...over,
  };
}

function runner(over: Partial<KubernetesConfig> = {}, stateDir = join(dir, 'state')): KubernetesRunner {
  return new KubernetesRunner({ config: config(over), stateDir, stopWaitMs: 15_000 });
}

function spec(def: Partial<JobDefinition>, more: Partial<TaskSpec> = {}): TaskSpec {
  seq++;
  return {
    executionId: `01JKUBE${String(seq).padStart(4, '0')}ABCDEFGHJKMNPQ`,
    executorId: '01JEXECUTOR0000000000000XY',
    executorName: 'kube-1',
    attempt: 1,
    definition: {
      name: 'kube-job',
      description: '',
      authorized_groups: [],
      env_vars: { secrets: [], args: [] },
      runner: 'kubernetes',
      files: [],
      image_name: 'test/ok',
      ...def,
    },
    args: {},
    secrets: {},
    env: { GRID_TASK_KEY: '01JEXECUTOR0000000000000XY' },
    timeoutMs: 0,
    ...more,
  };
}

async function run(r: KubernetesRunner, s: TaskSpec, signal = new AbortController().signal) {
  const out = new Collect();
  const task = await r.start(s, out, signal);
  const result = await task.wait();
  return { out, result };
}

const nameOf = (s: TaskSpec): string => jobName(s, s.env['GRID_TASK_KEY']!);
const requestsFor = (job: string): RecordedRequest[] => fake.requests.filter((q) => q.path.includes(job) || JSON.stringify(q.body ?? '').includes(job));
const jobPosts = (job: string): RecordedRequest[] =>
  fake.requests.filter((q) => q.method === 'POST' && q.path.endsWith('/jobs') && (q.body as { metadata?: { name?: string } })?.metadata?.name === job);

async function until<T>(what: string, f: () => T, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const jobsNamed = (job: string) => fake.list('jobs', NS).filter((j) => j['metadata']['name'] === job);
const podsOf = (job: string) => fake.list('pods', NS).filter((p) => p['metadata']['labels']?.['job-name'] === job);

describe('kubernetes runner: results', () => {
  it('runs a Job that succeeds: the spec it sends, the log line by line, then the Job is deleted', async () => {
    const s = spec({ image_name: 'test/ok', command: ['/app/run', '--region={{REGION}}'] }, { args: { REGION: 'eu-west' }, timeoutMs: 90_000 });
    const { out, result } = await run(runner(), s);
    expect(result).toEqual({ outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' });
    expect(out.text('stdout')).toBe('line 1\nline 2\nline 3\n');
    expect(out.finished).toBe(1);

    const name = nameOf(s);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(name.length).toBeLessThanOrEqual(63);
    const [post] = jobPosts(name);
    const job = post!.body as ReturnType<typeof buildJob>;
    expect(job.metadata!.labels).toMatchObject({
      'grid.io/execution-id': s.executionId,
      'grid.io/job': 'kube-job',
      'grid.io/executor': s.executorId,
      'app.kubernetes.io/managed-by': 'grid',
    });
    const pod = job.spec!.template.spec!;
    expect(job.spec!.backoffLimit).toBe(0);
    expect(job.spec!.activeDeadlineSeconds).toBe(90);
    expect(job.spec!.ttlSecondsAfterFinished).toBe(600);
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.serviceAccountName).toBe('grid-job');
    expect(pod.imagePullSecrets).toEqual([{ name: 'registry-credentials' }]);
    expect(job.spec!.template.metadata!.annotations).toEqual({ 'example.com/team': 'ops' });
    const c = pod.containers[0]!;
    expect(c.image).toBe('test/ok');
    expect(c.command).toEqual(['/app/run', '--region=eu-west']);
    expect(c.resources).toEqual({ requests: { cpu: '100m' }, limits: { memory: '256Mi' } });
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ REGION: 'eu-west', GRID_EXECUTION_ID: s.executionId, GRID_EXECUTOR: 'kube-1', GRID_ATTEMPT: '1' });

    // Its result is taken: the Job is deleted, and with it its pods.
    await until('job and pods gone', () => jobsNamed(name).length + podsOf(name).length, (n) => n === 0);
  });

  it('a container that exits 3 fails the task with "exit code 3 (Error)"', async () => {
    const { out, result } = await run(runner(), spec({ image_name: 'test/fail3' }));
    expect(result).toEqual({ outcome: 'failed', exitCode: 3, reason: 'exit code 3 (Error)' });
    expect(out.text('stdout')).toBe('about to fail with 3\n');
  });

  it('an OOMKilled container fails the task with the reason', async () => {
    const { out, result } = await run(runner(), spec({ image_name: 'test/oom' }));
    expect(result).toEqual({ outcome: 'failed', exitCode: 137, reason: 'OOMKilled (exit code 137)' });
    expect(out.text('stdout')).toBe('allocating memory\n');
  });

  it('with job_retries, Kubernetes runs another pod and every pod\'s log is delivered', async () => {
    const { out, result } = await run(runner({ job_retries: 1 }), spec({ image_name: 'test/fail3' }));
    expect(result).toEqual({ outcome: 'failed', exitCode: 3, reason: 'exit code 3 (Error), after 2 pods' });
    expect(out.text('stdout')).toBe('about to fail with 3\nabout to fail with 3\n');
  });

  it('an image that cannot be pulled fails the task with the reason, and the Job is deleted', async () => {
    const s = spec({ image_name: 'test/pull-error' });
    const { out, result } = await run(runner(), s);
    expect(result.outcome).toBe('failed');
    expect(result.reason).toMatch(/^image pull failed: (ErrImagePull|ImagePullBackOff): .*test\/pull-error/);
    expect(out.text('system')).toContain(result.reason);
    await until('job and pods gone', () => jobsNamed(nameOf(s)).length + podsOf(nameOf(s)).length, (n) => n === 0);
  });

  it('a pod no node can take fails the task as unschedulable, and the Job is deleted', async () => {
    const s = spec({ image_name: 'test/unschedulable' });
    const { result } = await run(runner(), s);
    expect(result.outcome).toBe('failed');
    expect(result.reason).toMatch(/^pod unschedulable: 0\/3 nodes are available: 3 Insufficient cpu/);
    await until('job and pods gone', () => jobsNamed(nameOf(s)).length + podsOf(nameOf(s)).length, (n) => n === 0);
  });

  it('a Job past its activeDeadlineSeconds is timed out with "deadline exceeded"', async () => {
    const s = spec({ image_name: 'test/slow' });
    const { out, result } = await run(runner({ job_active_deadline_seconds: 1 }), s);
    expect(result.outcome).toBe('timed_out');
    expect(result.reason).toBe('deadline exceeded after 1s');
    expect(out.text('stdout')).toMatch(/^line 1\n/);
    expect((jobPosts(nameOf(s))[0]!.body as ReturnType<typeof buildJob>).spec!.activeDeadlineSeconds).toBe(1);
  });
});

describe('kubernetes runner: the task pod', () => {
  /** Runs a definition as validated at create, and returns the pod template of the Job it sent. */
  async function podOf(fields: Record<string, unknown>, over: Partial<KubernetesConfig> = {}) {
    const definition = validateJobDefinition({ name: 'kube-job', image_name: 'test/ok', ...fields });
    const s = spec(definition);
    const { result } = await run(runner(over), s);
    expect(result.outcome).toBe('succeeded');
    return (jobPosts(nameOf(s))[0]!.body as ReturnType<typeof buildJob>).spec!.template.spec!;
  }

  it('meets the restricted Pod Security Standard by default: non-root, no escalation, no capabilities, seccomp RuntimeDefault', async () => {
    const pod = await podOf({});
    expect(restrictedViolations(pod)).toEqual([]);
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0]!.securityContext).toEqual({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.nodeSelector).toBeUndefined();
    expect(pod.tolerations).toBeUndefined();
    // Without resources of its own, the executor's apply.
    expect(pod.containers[0]!.resources).toEqual({ requests: { cpu: '100m' }, limits: { memory: '256Mi' } });
  });

  it('takes resources, node_selector, tolerations and security_context from the definition, in Kubernetes\' spelling', async () => {
    const pod = await podOf({
      resources: { requests: { cpu: 1, memory: '512Mi' }, limits: { memory: '1Gi', 'example.com/fpga': '1' } },
      node_selector: { 'kubernetes.io/arch': 'arm64', disktype: 'ssd' },
      tolerations: [
        { key: 'dedicated', operator: 'Equal', value: 'batch', effect: 'NoSchedule' },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', toleration_seconds: 30 },
      ],
      security_context: { run_as_user: 1000, run_as_group: 3000, fs_group: 2000, read_only_root_filesystem: true, capabilities: { add: ['NET_BIND_SERVICE'] } },
    });
    // The definition's resources replace the executor's whole (no request over a default limit).
    expect(pod.containers[0]!.resources).toEqual({ requests: { cpu: '1', memory: '512Mi' }, limits: { memory: '1Gi', 'example.com/fpga': '1' } });
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/arch': 'arm64', disktype: 'ssd' });
    expect(pod.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'batch', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 30 },
    ]);
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' }, fsGroup: 2000 });
    expect(pod.containers[0]!.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 3000,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(restrictedViolations(pod)).toEqual([]);
  });

  it('a definition that loosens the default gets what it says, and no longer meets the restricted standard', async () => {
    const pod = await podOf({
      security_context: { run_as_non_root: false, run_as_user: 0, allow_privilege_escalation: true, capabilities: { drop: [] }, seccomp_profile: { type: 'Unconfined' } },
    });
    expect(pod.containers[0]!.securityContext).toEqual({
      runAsNonRoot: false,
      runAsUser: 0,
      allowPrivilegeEscalation: true,
      capabilities: { drop: [] },
      seccompProfile: { type: 'Unconfined' },
    });
    expect(restrictedViolations(pod)).toEqual([
      'spec.securityContext.seccompProfile.type: Unconfined',
      'spec.containers[0].securityContext.allowPrivilegeEscalation: must be false, is true',
      'spec.containers[0].securityContext.capabilities.drop: must include ALL, is []',
      'spec.containers[0].securityContext.runAsNonRoot: must be true (here or for the pod), is false',
      'spec.containers[0].securityContext.runAsUser: 0 (root)',
      'spec.containers[0].securityContext.seccompProfile.type: must be RuntimeDefault or Localhost (here or for the pod), is "Unconfined"',
    ]);
  });
});

/** The recorded DELETE of a Job, which must ask for foreground propagation. */
function deletesOf(job: string): RecordedRequest[] {
  return fake.requests.filter((q) => q.method === 'DELETE' && q.path === `/apis/batch/v1/namespaces/${NS}/jobs/${job}`);
}

describe('kubernetes runner: stopping', () => {
  it('cancel deletes the Job with foreground propagation; its pods go too', async () => {
    const s = spec({ image_name: 'test/slow' });
    const abort = new AbortController();
    const out = new Collect();
    const task = await runner().start(s, out, abort.signal);
    await out.until(/line 2\n/);
    const name = nameOf(s);
    expect(podsOf(name)).toHaveLength(1);
    abort.abort();
    const result = await task.wait();
    expect(result).toEqual({ outcome: 'cancelled', reason: 'cancelled' });
    const [del, ...more] = deletesOf(name);
    expect(more).toEqual([]);
    expect(del!.query['propagationPolicy']).toBe('Foreground');
    expect((del!.body as { propagationPolicy?: string }).propagationPolicy).toBe('Foreground');
    // stop() resolved only once the Job was gone: foreground deletion removed the pods first.
    expect(jobsNamed(name)).toEqual([]);
    expect(podsOf(name)).toEqual([]);
    expect(out.text('system')).toContain(`cancelled; deleting Kubernetes Job ${name}`);
    expect(out.finished).toBe(1);
  });

  it('the task timeout deletes the Job the same way and reports timed_out', async () => {
    const s = spec({ image_name: 'test/slow' }, { timeoutMs: 1500 });
    const out = new Collect();
    const task = await runner().start(s, out, new AbortController().signal);
    const result = await task.wait();
    expect(result.outcome).toBe('timed_out');
    // The runner's own timer (1.5 s) normally wins; activeDeadlineSeconds (2 s) is the backstop.
    expect(result.reason).toMatch(/^(timed out after 1\.5s|deadline exceeded after 2s)$/);
    const name = nameOf(s);
    if (result.reason.startsWith('timed out')) expect(deletesOf(name)[0]!.query['propagationPolicy']).toBe('Foreground');
    await until('job and pods gone', () => jobsNamed(name).length + podsOf(name).length, (n) => n === 0);
  });

  it('task.stop() from the executor does the same, and a second stop() is harmless', async () => {
    const s = spec({ image_name: 'test/slow' });
    const out = new Collect();
    const task = await runner().start(s, out, new AbortController().signal);
    await out.until(/line 1\n/);
    await Promise.all([task.stop('cancelled'), task.stop('timed_out')]);
    expect(await task.wait()).toEqual({ outcome: 'cancelled', reason: 'cancelled' });
    expect(deletesOf(nameOf(s))).toHaveLength(1);
    expect(jobsNamed(nameOf(s))).toEqual([]);
  });
});

describe('kubernetes runner: restart and recover', () => {
  it('a second runner recovers the Job by its labels: no second Job, the log complete and not repeated', async () => {
    const stateDir = join(dir, 'restart-state');
    const s = spec({ image_name: 'test/slow' }, { args: { LINES: '30', INTERVAL_MS: '40' } });
    const first = runner({}, stateDir);
    const out1 = new Collect();
    await first.start(s, out1, new AbortController().signal);
    await out1.until(/line 6\n/);
    await first.close(); // the executor goes away; the Job runs on

    // JetStream hands the task out again: a new delivery, so a new attempt number.
    const again = { ...s, attempt: 2 };
    const second = runner({}, stateDir);
    const out2 = new Collect();
    const task = await second.recover(again, out2, new AbortController().signal);
    expect(task).toBeDefined();
    const result = await task!.wait();
    expect(result).toEqual({ outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' });

    const lines = (out1.text('stdout') + out2.text('stdout')).split('\n').filter(Boolean);
    expect(lines).toEqual(Array.from({ length: 30 }, (_, i) => `line ${i + 1}`));
    expect(out2.text('system')).toContain('resumed following Kubernetes Job');
    expect(jobPosts(nameOf(s))).toHaveLength(1);
    expect(fake.requests.filter((q) => q.method === 'POST' && q.path.endsWith('/jobs') && JSON.stringify(q.body).includes(s.executionId))).toHaveLength(1);
  });

  it('recover without the log position (a new executor pod) reads the log again from the start and says so', async () => {
    const s = spec({ image_name: 'test/slow' }, { args: { LINES: '8', INTERVAL_MS: '40' } });
    const first = runner({}, join(dir, 'lost-state-a'));
    const out1 = new Collect();
    await first.start(s, out1, new AbortController().signal);
    await out1.until(/line 2\n/);
    await first.close();
    const out2 = new Collect();
    const task = await runner({}, join(dir, 'lost-state-b')).recover({ ...s, attempt: 2 }, out2, new AbortController().signal);
    expect(await task!.wait()).toMatchObject({ outcome: 'succeeded' });
    expect(out2.text('stdout')).toBe(Array.from({ length: 8 }, (_, i) => `line ${i + 1}\n`).join(''));
    expect(out2.text('system')).toContain('read again from the start');
  });

  it('recover finds nothing for a task without a Job, nor for one whose result was taken (so a retry starts afresh)', async () => {
    const r = runner();
    expect(await r.recover(spec({}), new Collect(), new AbortController().signal)).toBeUndefined();
    const s = spec({ image_name: 'test/fail3' });
    await run(r, s);
    await until('job gone', () => jobsNamed(nameOf(s)).length, (n) => n === 0);
    expect(await r.recover({ ...s, attempt: 2 }, new Collect(), new AbortController().signal)).toBeUndefined();
  });

  it('a Job that already exists (this attempt, created before) is adopted, not created twice', async () => {
    const s = spec({ image_name: 'test/ok' });
    const name = nameOf(s);
    const manifest = buildJob(s, config(), name, NS);
    const made = await fetch(`${fake.url}/apis/batch/v1/namespaces/${NS}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-fake-kube-test': '1' },
      body: JSON.stringify(manifest),
    });
    expect(made.status).toBe(201);
    const { out, result } = await run(runner(), s);
    expect(result.outcome).toBe('succeeded');
    expect(out.text('stdout')).toBe('line 1\nline 2\nline 3\n');
    expect(jobsNamed(name)).toEqual([]);
  });
});

describe('kubernetes runner: secrets', () => {
  const SECRET = 'hunter2-very-secret';

  it('a secret reaches the container through a Secret the Job owns, never as a value in any spec sent', async () => {
    const s = spec(
      { image_name: 'test/env', env_vars: { secrets: [{ name: 'DB_PASSWORD' }], args: [] } as unknown as JobDefinition['env_vars'] },
      { args: { DATABASE: 'orders', DB_PASSWORD: SECRET }, secrets: { DB_PASSWORD: SECRET } },
    );
    const name = nameOf(s);
    const { out, result } = await run(runner(), s);
    expect(result.outcome).toBe('succeeded');
    // The pod saw it (the fake kubelet resolved the secretKeyRef) …
    expect(out.text('stdout')).toContain(`DB_PASSWORD=${SECRET}\n`);
    expect(out.text('stdout')).toContain('DATABASE=orders\n');

    // … the Job only references it …
    const job = jobPosts(name)[0]!.body as ReturnType<typeof buildJob>;
    const env = job.spec!.template.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === 'DB_PASSWORD')).toEqual({ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name, key: 'DB_PASSWORD' } } });

    // … and no request but the Secret's own creation carries the value, in clear or base64.
    const b64 = Buffer.from(SECRET).toString('base64');
    const carrying = fake.requests.filter((q) => q.raw.includes(SECRET) || q.raw.includes(b64));
    expect(carrying.map((q) => `${q.method} ${q.path}`)).toEqual([`POST /api/v1/namespaces/${NS}/secrets`]);
    // The Job was created suspended, then the Secret owned by it from birth, then the Job let go;
    // the Secret itself was never changed nor deleted by the runner.
    const order = requestsFor(name)
      .filter((q) => q.method !== 'GET')
      .map((q) => `${q.method} ${q.path.replace(/\/namespaces\/[^/]+/, '')}`);
    expect(order.slice(0, 3)).toEqual(['POST /apis/batch/v1/jobs', 'POST /api/v1/secrets', `PATCH /apis/batch/v1/jobs/${name}`]);
    expect(job.spec!.suspend).toBe(true);
    const created = fake.requests.find((q) => q.method === 'POST' && q.path === `/api/v1/namespaces/${NS}/secrets`)!.body as { metadata: { ownerReferences: unknown[] } };
    // (That the uid is the Job's shows below: the collector deletes the Secret with the Job.)
    expect(created.metadata.ownerReferences).toEqual([{ apiVersion: 'batch/v1', kind: 'Job', name, uid: expect.stringMatching(/^[0-9a-f-]{36}$/) }]);
    const resume = fake.requests.find((q) => q.method === 'PATCH' && q.path === `/apis/batch/v1/namespaces/${NS}/jobs/${name}`)!;
    expect(resume.contentType).toMatch(/^application\/json-patch\+json/);
    expect(resume.body).toEqual([{ op: 'replace', path: '/spec/suspend', value: false }]);
    expect(fake.requests.filter((q) => q.path.includes('/secrets/'))).toEqual([]);
    // Deleting the Job took the Secret with it (ownerReference garbage collection).
    await until('secret collected', () => fake.list('secrets', NS).filter((x) => x['metadata']['name'] === name).length, (n) => n === 0);
  });

  it('a task without secrets is not suspended and makes no Secret', async () => {
    const s = spec({ image_name: 'test/ok' });
    expect((await run(runner(), s)).result.outcome).toBe('succeeded');
    expect((jobPosts(nameOf(s))[0]!.body as ReturnType<typeof buildJob>).spec!.suspend).toBeUndefined();
    expect(requestsFor(nameOf(s)).filter((q) => q.path.includes('/secrets') || q.method === 'PATCH')).toEqual([]);
  });

  it('an executor that died before the Secret was made: recover makes it, owned by the Job, and lets the Job go', async () => {
    const s = spec(
      { image_name: 'test/env', env_vars: { secrets: [{ name: 'DB_PASSWORD' }], args: [] } as unknown as JobDefinition['env_vars'] },
      { args: { DB_PASSWORD: SECRET }, secrets: { DB_PASSWORD: SECRET } },
    );
    const name = nameOf(s);
    // What the dead run left: its Job, created suspended, and nothing else.
    const made = await fetch(`${fake.url}/apis/batch/v1/namespaces/${NS}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-fake-kube-test': '1' },
      body: JSON.stringify(buildJob(s, config(), name, NS)),
    });
    expect(made.status).toBe(201);
    expect(podsOf(name)).toEqual([]);
    const out = new Collect();
    const task = await runner().recover({ ...s, attempt: 2 }, out, new AbortController().signal);
    expect(await task!.wait()).toMatchObject({ outcome: 'succeeded' });
    expect(out.text('stdout')).toContain(`DB_PASSWORD=${SECRET}\n`);
    expect(jobPosts(name).filter((q) => !q.fromTest)).toEqual([]); // the runner made no second Job
  });

  it('a secret used in the command is refused: it would be stored in the Job spec', async () => {
    const s = spec({ image_name: 'test/ok', command: ['login', '--password={{DB_PASSWORD}}'] }, { args: { DB_PASSWORD: SECRET }, secrets: { DB_PASSWORD: SECRET } });
    const before = fake.requests.length;
    const { result } = await run(runner(), s);
    expect(result.outcome).toBe('failed');
    expect(result.reason).toContain('{{DB_PASSWORD}} is a secret');
    expect(jobPosts(nameOf(s))).toEqual([]);
    expect(fake.requests.slice(before).some((q) => q.raw.includes(SECRET))).toBe(false);
  });

  it('when the API server refuses the Job, no Secret is made at all', async () => {
    const s = spec({ image_name: 'test/ok' }, { args: { DB_PASSWORD: SECRET }, secrets: { DB_PASSWORD: SECRET } });
    const name = nameOf(s);
    fake.failNext('POST', new RegExp(`^/apis/batch/v1/namespaces/${NS}/jobs$`), 422, `Job.batch "${name}" is invalid: spec.template: Invalid value`);
    const { result } = await run(runner(), s);
    expect(result.outcome).toBe('failed');
    expect(result.reason).toBe(`Kubernetes refused the Job ${name}: HTTP 422: Job.batch "${name}" is invalid: spec.template: Invalid value`);
    expect(requestsFor(name).filter((q) => q.path.includes('/secrets'))).toEqual([]);
  });

  it('when the API server refuses the Secret, the suspended Job is deleted, and nothing holds the secret', async () => {
    const s = spec({ image_name: 'test/ok' }, { args: { DB_PASSWORD: SECRET }, secrets: { DB_PASSWORD: SECRET } });
    const name = nameOf(s);
    fake.failNext('POST', new RegExp(`^/api/v1/namespaces/${NS}/secrets$`), 403, `secrets is forbidden: exceeded quota: secrets`);
    const { result } = await run(runner(), s);
    expect(result).toEqual({ outcome: 'failed', reason: `Kubernetes refused the Secret of the Job ${name}: HTTP 403: secrets is forbidden: exceeded quota: secrets` });
    await until('job gone', () => jobsNamed(name).length, (n) => n === 0);
    expect(fake.list('secrets', NS).filter((x) => x['metadata']['name'] === name)).toEqual([]);
    expect(podsOf(name)).toEqual([]); // it never started
  });
});

describe('kubernetes runner: RBAC', () => {
  it('the requests made in these tests use exactly the verbs the Role in config/kubernetes/ grants', () => {
    const used = [...rbacVerbs(fake.requests)].sort();
    writeFileSync(KUBE_VERBS_FILE, JSON.stringify(used, null, 2) + '\n');
    expect(used).toEqual([...roleVerbs()].sort());
  });
});
