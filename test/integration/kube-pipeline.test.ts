// The whole pipeline with the kubernetes runner: etcd, nats-server, a controller and an executor
// process (`runners: ["kubernetes"]`) whose kubeconfig points at the fake API server running in
// this test. Success with logs (read back with `grid-cli getlogs`), exit code 3, an image that
// cannot be pulled, an unschedulable pod, a timeout, a cancel (foreground deletion), and the
// executor killed -9 and restarted in the middle of a Job (no second Job; the log complete and
// not repeated). No timing assertions.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { ExecutionState, TaskState, type Execution } from '../../src/gen/grid/v1/types.js';
import { startExecutor, stopExecutors, type RunningExecutor } from '../harness/executor-process.js';
import { FakeKube, rbacVerbs, type RecordedRequest } from '../harness/fake-kube.js';
import { roleVerbs } from '../harness/fake-kube-rbac.js';
import { cleanupProcesses, runCli, startController, tempDir, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { testClientTls } from '../harness/grpc-tls.js';

const NS = 'grid-jobs';

let servers: TestServers;
let controller: RunningController;
let fake: FakeKube;
let admin: GridClient;
let ops: GridClient;
let executor: RunningExecutor;

const xstate = (x: Execution): string => (ExecutionState[x.state] ?? '?').replace('EXECUTION_STATE_', '');
const tstate = (x: Execution): string => (x.tasks[0] ? (TaskState[x.tasks[0].state] ?? '?').replace('TASK_STATE_', '') : '-');
const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);
const brief = (x: Execution): string =>
  JSON.stringify({ state: xstate(x), reason: x.reason, tasks: x.tasks.map((t) => ({ state: TaskState[t.state], exit: t.exitCode, reason: t.reason, attempts: t.attempts })) });

function kubeJob(name: string, image: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    description: `kubernetes runner test: ${image}`,
    image_name: image,
    timeout_seconds: 300,
    env_vars: {
      secrets: [],
      args: [
        { name: 'LINES', description: 'lines to print', required: false, default: '3' },
        { name: 'INTERVAL_MS', description: 'between lines', required: false, default: '200' },
      ],
    },
    ...more,
  };
}

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  fake = await FakeKube.start();
  const dir = tempDir('grid-kube-pipeline-');
  const kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'), NS);
  admin = new GridClient({ address: controller.address, token: TOKENS.admin, timeoutMs: 5_000, tls: testClientTls() });
  ops = new GridClient({ address: controller.address, token: TOKENS.operator, timeoutMs: 5_000, tls: testClientTls() });
  executor = await startExecutor({
    controller: controller.address,
    name: uniqueName('kube'),
    dir,
    config: {
      runners: ['kubernetes'],
      kubernetes: { kube_config: kubeconfig, default_namespace: NS, ttl_seconds_after_finished: 600 },
    },
  });
  for (const def of [
    kubeJob('kube-ok', 'test/ok'),
    kubeJob('kube-fail', 'test/fail3'),
    kubeJob('kube-pull', 'test/pull-error'),
    kubeJob('kube-unsched', 'test/unschedulable'),
    kubeJob('kube-slow', 'test/slow'),
    kubeJob('kube-slow-2s', 'test/slow', { timeout_seconds: 2 }),
  ]) {
    await admin.ctl.createJob({ definitionJson: JSON.stringify(def), replace: false, expectedVersion: 0 });
  }
}, 120_000);

afterAll(async () => {
  admin?.close();
  ops?.close();
  await stopExecutors();
  await cleanupProcesses();
  await fake?.close();
  await servers?.stop();
});

async function execute(job: string, args: Record<string, string> = {}): Promise<string> {
  const res = await ops.ctl.execute({ job, args, target: `node:${executor.name}`, timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false });
  return res.executionId;
}

async function waitFor<T>(what: string, probe: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs: number, show: (v: T) => string = (v) => JSON.stringify(v)): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = '(none)';
  for (;;) {
    try {
      const v = await probe();
      if (ok(v)) return v;
      last = show(v);
    } catch (err) {
      last = `error: ${(err as Error).message}`;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms; last: ${last}\nexecutor log:\n${executor.logs().slice(-3000)}`);
    await delay(100);
  }
}

const finished = (id: string, timeoutMs = 30_000): Promise<Execution> =>
  waitFor(`execution ${id} over`, () => ops.ctl.getExecution(id), (x) => TERMINAL.has(xstate(x)), timeoutMs, brief);

async function getlogs(id: string): Promise<{ stdout: string; stderr: string }> {
  const r = await runCli(['getlogs', id], { address: controller.address, token: TOKENS.operator });
  expect(r.code, r.stderr).toBe(0);
  return r;
}

const lineNumbers = (stdout: string): string[] => stdout.split('\n').filter((l) => /^line \d+$/.test(l));
const jobPostsFor = (id: string): RecordedRequest[] =>
  fake.requests.filter((q) => q.method === 'POST' && q.path === `/apis/batch/v1/namespaces/${NS}/jobs` && JSON.stringify(q.body).includes(`"grid.io/execution-id":"${id}"`));
const ofExecution = (resource: 'jobs' | 'pods', id: string) => fake.list(resource, NS).filter((o) => o['metadata']['labels']?.['grid.io/execution-id'] === id);
const foregroundDeletes = (id: string): RecordedRequest[] => {
  const names = new Set(jobPostsFor(id).map((q) => (q.body as { metadata: { name: string } }).metadata.name));
  return fake.requests.filter((q) => q.method === 'DELETE' && names.has(q.path.split('/').pop()!) && q.query['propagationPolicy'] === 'Foreground');
};

describe('kubernetes runner through the pipeline', () => {
  it('a Job that succeeds: SUCCEEDED with "exit code 0", and its log through grid-cli getlogs', async () => {
    const id = await execute('kube-ok');
    const x = await finished(id);
    expect(xstate(x), brief(x)).toBe('SUCCEEDED');
    expect(x.tasks[0]!.reason).toBe('exit code 0');
    const logs = await getlogs(id);
    expect(logs.stdout).toBe('line 1\nline 2\nline 3\n');
    expect(logs.stderr).toContain('running as Kubernetes Job');
    expect(jobPostsFor(id)).toHaveLength(1);
    await waitFor('Job deleted once done', () => ofExecution('jobs', id).length, (n) => n === 0, 10_000);
  });

  it('a container exiting 3: FAILED, exit code 3, "exit code 3 (Error)"', async () => {
    const id = await execute('kube-fail');
    const x = await finished(id);
    expect(xstate(x), brief(x)).toBe('FAILED');
    expect(x.tasks[0]!.exitCode).toBe(3);
    expect(x.tasks[0]!.reason).toBe('exit code 3 (Error)');
    expect((await getlogs(id)).stdout).toBe('about to fail with 3\n');
  });

  it('an image that cannot be pulled, and a pod no node takes: FAILED with the reason in words', async () => {
    const pull = await execute('kube-pull');
    const unsched = await execute('kube-unsched');
    const [a, b] = await Promise.all([finished(pull), finished(unsched)]);
    expect(xstate(a), brief(a)).toBe('FAILED');
    expect(a.tasks[0]!.reason).toMatch(/^image pull failed: (ErrImagePull|ImagePullBackOff): /);
    expect(xstate(b), brief(b)).toBe('FAILED');
    expect(b.tasks[0]!.reason).toMatch(/^pod unschedulable: 0\/3 nodes are available/);
    await waitFor('their Jobs deleted', () => ofExecution('jobs', pull).length + ofExecution('jobs', unsched).length, (n) => n === 0, 10_000);
  });

  it('a task past its timeout: TIMED_OUT, the Job deleted with foreground propagation', async () => {
    const id = await execute('kube-slow-2s', { LINES: '600' });
    const x = await finished(id);
    expect(xstate(x), brief(x)).toBe('TIMED_OUT');
    expect(x.tasks[0]!.reason).toMatch(/^(timed out after 2s|deadline exceeded after 2s)$/);
    await waitFor('Job and pods gone', () => ofExecution('jobs', id).length + ofExecution('pods', id).length, (n) => n === 0, 15_000);
    // The runner's timer normally wins; when activeDeadlineSeconds does, Kubernetes ended the pod itself.
    if (x.tasks[0]!.reason.startsWith('timed out')) expect(foregroundDeletes(id)).toHaveLength(1);
  });

  it('cancel: CANCELLED, the Job deleted with foreground propagation and its pods gone', async () => {
    const id = await execute('kube-slow', { LINES: '600' });
    await waitFor('pod running', () => ofExecution('pods', id), (pods) => pods.some((p) => p['status']['phase'] === 'Running'), 20_000);
    await ops.ctl.cancelExecution(id);
    const x = await finished(id);
    expect(xstate(x), brief(x)).toBe('CANCELLED');
    await waitFor('Job and pods gone', () => ofExecution('jobs', id).length + ofExecution('pods', id).length, (n) => n === 0, 15_000);
    const dels = foregroundDeletes(id);
    expect(dels).toHaveLength(1);
    expect((dels[0]!.body as { propagationPolicy?: string }).propagationPolicy).toBe('Foreground');
    expect((await getlogs(id)).stdout).toMatch(/^line 1\n/);
  });

  it('executor killed -9 mid-Job and restarted: the Job is recovered, not created again; the log complete, no line twice', async () => {
    const LINES = 100;
    const id = await execute('kube-slow', { LINES: String(LINES), INTERVAL_MS: '250' });
    await waitFor('some lines delivered', async () => lineNumbers((await getlogs(id)).stdout).length, (n) => n >= 5, 20_000);
    expect(await executor.kill9()).toBe(137);
    await executor.restart();
    // JetStream offers the task again after ack_wait; the restarted executor recovers the Job.
    const x = await finished(id, 90_000);
    expect(xstate(x), brief(x)).toBe('SUCCEEDED');
    expect(jobPostsFor(id)).toHaveLength(1);
    expect(executor.logs()).toMatch(/resumed a task left running by an earlier run of this executor/);
    const logs = await getlogs(id);
    expect(lineNumbers(logs.stdout)).toEqual(Array.from({ length: LINES }, (_, i) => `line ${i + 1}`));
    expect(logs.stderr).toContain('resumed following Kubernetes Job');
  }, 150_000);

  it('the executor\'s requests stayed within the Role in config/kubernetes/', () => {
    const role = roleVerbs();
    expect([...rbacVerbs(fake.requests)].filter((v) => !role.has(v))).toEqual([]);
  });
});
