// Metrics and health of a real controller (real nats-server, etcd and a host executor), over
// HTTPS with the test CA: /metrics read with the strict text-format reader, its counters moved
// by one execution; /livez and /readyz without a token; /readyz 503 and gRPC health NOT_SERVING
// within 2 s of etcd being killed, and both back once etcd is restarted. The executor's own
// /metrics and /readyz on its metrics_address: its task counted, its controller link down while
// the controller cannot take heartbeats.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../../src/gen/grpc/health/v1/health.js';
import { eventually } from '../harness/eventually.js';
import { startExecutor, stopExecutors } from '../harness/executor-process.js';
import { startFaultableServers, type FaultableServers } from '../harness/faultable-servers.js';
import { testCa, testClientTls } from '../harness/grpc-tls.js';
import { cleanupProcesses, startController, TOKEN_SPECS, TOKENS, type RunningController } from '../harness/processes.js';
import { parsePromText, type Exposition } from '../harness/prom-text.js';
import { uniqueName } from '../harness/servers.js';

const METRICS_TOKEN = 'e2e-metrics-scraper-token-77';

let servers: FaultableServers;
let controller: RunningController;
let base: string;
let dispatcher: Agent;
let client: GridClient;
/** The executor's metrics_address, as http://host:port. */
let executorOps: string;

beforeAll(async () => {
  servers = await startFaultableServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: {
      tokens: [
        ...TOKEN_SPECS,
        { name: 'prometheus', token: METRICS_TOKEN, role: 'metrics' },
      ],
    },
  });
  base = `https://${/http ready address=(\S+) tls=on/.exec(controller.logs())![1]!}`;
  dispatcher = new Agent({ connect: { ca: testCa().pem } });
  client = new GridClient({ address: controller.address, tls: testClientTls(), timeoutMs: 5_000 });
});

afterAll(async () => {
  client?.close();
  await dispatcher?.close();
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

async function get(path: string, token?: string): Promise<{ status: number; text: string; type: string }> {
  const res = await fetch(base + path, { headers: token ? { authorization: `Bearer ${token}` } : {}, dispatcher } as RequestInit);
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

async function scrape(from = base): Promise<Exposition> {
  const r = from === base ? await get('/metrics', METRICS_TOKEN) : await plainGet(`${from}/metrics`);
  expect(r.status, r.text).toBe(200);
  expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parsePromText(r.text);
}

async function plainGet(url: string): Promise<{ status: number; text: string; type: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

async function api(method: string, path: string, body?: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${TOKENS.admin}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    dispatcher,
  } as RequestInit);
  const text = await res.text();
  expect(res.status, text).toBeLessThan(300);
  return JSON.parse(text);
}

describe('metrics and health', () => {
  it('/metrics parses as the text format and its counters move across one execution', async () => {
    expect((await get('/metrics')).status).toBe(401);
    expect((await get('/metrics', TOKENS.viewer)).status).toBe(200);

    const executor = await startExecutor({ controller: controller.address, name: uniqueName('metrics-node'), config: { runners: ['host'], metrics_address: '127.0.0.1:0' } });
    executorOps = `http://${/metrics ready address=(\S+)/.exec(executor.logs())![1]!}`;
    const job = uniqueName('metrics-echo');
    await api('POST', '/v1/jobs', { name: job, description: 'says hello', command: ['echo', 'hello'] });
    const before = await scrape();
    const heartbeatsBefore = before.value('grid_heartbeats_total', { result: 'accepted' }) ?? 0;
    expect(heartbeatsBefore).toBeGreaterThan(0);
    expect(before.value('grid_executions_total', { job, state: 'SUCCEEDED' })).toBeUndefined();

    const started = await api('POST', `/v1/jobs/${job}/executions`, {});
    const id = started.executionId as string;
    const done = await eventually('the execution to end', async () => {
      const s = await api('GET', `/v1/executions/${id}`);
      return ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(s.state) && s;
    }, { timeoutMs: 30_000, everyMs: 100 });
    expect(done.state).toBe('SUCCEEDED');

    const after = await eventually('a heartbeat after the execution', async () => {
      const m = await scrape();
      return (m.value('grid_heartbeats_total', { result: 'accepted' }) ?? 0) > heartbeatsBefore && m;
    }, { timeoutMs: 10_000, everyMs: 200 });
    expect(after.value('grid_executions_created_total', { job })).toBe(1);
    expect(after.value('grid_executions_total', { job, state: 'SUCCEEDED' })).toBe(1);
    expect(after.value('grid_tasks_total', { job, state: 'SUCCEEDED' })).toBe(1);
    expect(after.value('grid_task_duration_seconds_count', { job, state: 'SUCCEEDED' })).toBe(1);
    expect(after.value('grid_task_duration_seconds_bucket', { job, state: 'SUCCEEDED', le: '+Inf' })).toBe(1);
    expect(after.value('grid_task_start_latency_seconds_count', { job })).toBe(1);
    expect(after.value('grid_executors', { state: 'ACTIVE' })).toBe(1);
    for (const backend of ['etcd', 'nats']) {
      expect(after.value(`grid_${backend}_round_trip_seconds_count`)).toBeGreaterThan(before.value(`grid_${backend}_round_trip_seconds_count`)!);
      expect(after.value('grid_backend_up', { backend })).toBe(1);
    }
    expect(after.families.get('process_cpu_seconds_total')?.type).toBe('counter');
    const labels = [...after.families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
    expect(labels).not.toContain(id);
    expect(labels).not.toContain(executor.id);

    // The executor's own page: no token, plain HTTP.
    const own = await scrape(executorOps);
    expect(own.value('grid_executor_tasks_total', { outcome: 'succeeded' })).toBe(1);
    expect(own.value('grid_executor_task_duration_seconds_count', { outcome: 'succeeded' })).toBe(1);
    expect(own.value('grid_executor_tasks_running')).toBe(0);
    expect(own.value('grid_executor_heartbeats_total', { result: 'accepted' })).toBeGreaterThan(0);
    expect(own.value('grid_executor_connected', { link: 'controller' })).toBe(1);
    expect(own.value('grid_executor_connected', { link: 'nats' })).toBe(1);
    const ready = await plainGet(`${executorOps}/readyz`);
    expect([ready.status, JSON.parse(ready.text)]).toEqual([200, { status: 'ready', running: true, links: { controller: 'up', nats: 'up' } }]);
    expect((await plainGet(`${executorOps}/livez`)).status).toBe(200);
    expect((await plainGet(`${executorOps}/nothing`)).status).toBe(404);
  });

  it('/readyz turns 503 and gRPC health NOT_SERVING within 2 s of etcd stopping, and back once it returns', async () => {
    expect((await get('/livez')).status).toBe(200);
    const ready = await get('/readyz');
    expect([ready.status, JSON.parse(ready.text)]).toEqual([200, { status: 'ready', backends: { etcd: 'up', nats: 'up' } }]);
    expect((await client.checkHealth()).status).toBe(Serving.SERVING);

    await servers.kill9('etcd');
    const stopped = Date.now();
    const down = await eventually('/readyz to answer 503', async () => {
      const r = await get('/readyz');
      return r.status === 503 && r;
    }, { timeoutMs: 10_000, everyMs: 50 });
    const tookMs = Date.now() - stopped;
    expect(tookMs, `/readyz answered 503 ${tookMs} ms after etcd was killed`).toBeLessThanOrEqual(2_000);
    expect(JSON.parse(down.text)).toEqual({ status: 'not_ready', backends: { etcd: 'down', nats: 'up' } });
    expect((await client.checkHealth()).status).toBe(Serving.NOT_SERVING);
    expect((await get('/livez')).status).toBe(200);
    expect(controller.logs()).toMatch(/etcd is not answering: this controller is not ready/);
    // The controller cannot keep an executor's lease without etcd: its heartbeats fail.
    const executorDown = await eventually('the executor\'s /readyz to answer 503', async () => {
      const r = await plainGet(`${executorOps}/readyz`);
      return r.status === 503 && r;
    }, { timeoutMs: 15_000, everyMs: 100 });
    expect(JSON.parse(executorDown.text).links).toEqual({ controller: 'down', nats: 'up' });

    await servers.restart('etcd');
    await eventually('/readyz to answer 200 again', async () => (await get('/readyz')).status === 200, { timeoutMs: 30_000, everyMs: 100 });
    expect((await client.checkHealth()).status).toBe(Serving.SERVING);
    await eventually('the executor\'s /readyz to answer 200 again', async () => (await plainGet(`${executorOps}/readyz`)).status === 200, { timeoutMs: 30_000, everyMs: 100 });
    expect((await scrape(executorOps)).value('grid_executor_heartbeats_total', { result: 'failed' })).toBeGreaterThan(0);
    const m = await scrape();
    expect(m.value('grid_backend_probe_failures_total', { backend: 'etcd' })).toBeGreaterThan(0);
    expect(m.value('grid_backend_up', { backend: 'etcd' })).toBe(1);
  }, 90_000);
});
