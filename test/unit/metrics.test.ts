// The controller's metrics and readiness without servers: what a record's writes count (ends once,
// durations from the last claim), readiness from probes that fail or hang, the HTTP door's
// /livez, /readyz and /metrics with their tokens, the executor's small server on its
// metrics_address, and the strict text-format reader the tests use.

import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/controller/auth.js';
import { buildHttpApi, type HttpApi, type HttpUseCases } from '../../src/controller/doors/http/server.js';
import { JobService } from '../../src/controller/jobs.js';
import { ControllerMetrics } from '../../src/controller/metrics.js';
import { Readiness } from '../../src/controller/readiness.js';
import { ExecutorMetrics } from '../../src/executor/metrics.js';
import { serveExecutorOps } from '../../src/executor/ops-server.js';
import type { Execution, Task } from '../../src/domain/execution.js';
import { MemoryJobStore } from '../../src/store/memory.js';
import { silentLogger } from '../../src/util/log.js';
import { parsePromText } from '../harness/prom-text.js';

function task(over: Partial<Task> = {}): Task {
  return { key: 'e1', executor_id: 'e1', executor_name: 'web-1', state: 'PENDING', attempts: 0, started_at_ms: 0, finished_at_ms: 0, reason: '', wave: 0, released_at_ms: 1_000, ...over };
}

function execution(tasks: Task[], over: Partial<Execution> = {}): Execution {
  return {
    id: '01JOB', job: 'deploy', job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'ops', state: 'DISPATCHED', reason: '',
    created_at_ms: 1_000, updated_at_ms: 1_000, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
    tasks, ...over,
  };
}

describe('ControllerMetrics.recordWritten', () => {
  it('counts an end once (not again when a late result turns FAILED into SUCCEEDED), and a duration from the last claim', async () => {
    const m = new ControllerMetrics();
    const created = execution([task(), task({ key: 'e2', executor_id: 'e2' })]);
    m.recordWritten(undefined, created);
    const claimed = execution([task({ state: 'RUNNING', attempts: 1, started_at_ms: 1_500 }), task({ key: 'e2', executor_id: 'e2' })], { state: 'RUNNING' });
    m.recordWritten(created, claimed);
    // Attempt 2 of e1 after a retry: no second start latency; e2 cancelled before it started: no duration.
    const retried = execution([task({ state: 'RUNNING', attempts: 2, started_at_ms: 9_000 }), task({ key: 'e2', executor_id: 'e2' })], { state: 'RUNNING' });
    m.recordWritten(claimed, retried);
    const ended = execution(
      [task({ state: 'FAILED', attempts: 2, started_at_ms: 9_000, finished_at_ms: 12_000 }), task({ key: 'e2', executor_id: 'e2', state: 'CANCELLED', finished_at_ms: 12_000 })],
      { state: 'FAILED', finished_at_ms: 12_000 },
    );
    m.recordWritten(retried, ended);
    m.recordWritten(ended, { ...ended, state: 'SUCCEEDED' });
    const p = parsePromText(await m.text());
    expect(p.value('grid_executions_created_total', { job: 'deploy' })).toBe(1);
    expect(p.value('grid_executions_total', { job: 'deploy', state: 'FAILED' })).toBe(1);
    expect(p.value('grid_executions_total', { job: 'deploy', state: 'SUCCEEDED' })).toBeUndefined();
    expect(p.value('grid_task_start_latency_seconds_count', { job: 'deploy' })).toBe(1);
    expect(p.value('grid_task_start_latency_seconds_sum', { job: 'deploy' })).toBe(0.5);
    expect(p.value('grid_task_duration_seconds_sum', { job: 'deploy', state: 'FAILED' })).toBe(3);
    expect(p.value('grid_task_duration_seconds_count', { job: 'deploy', state: 'CANCELLED' })).toBeUndefined();
    expect(p.value('grid_tasks_total', { job: 'deploy', state: 'CANCELLED' })).toBe(1);
  });

  it('counts an execution that failed as it was created, and each registry builds its own metrics', async () => {
    const a = new ControllerMetrics();
    const b = new ControllerMetrics();
    a.recordWritten(undefined, execution([], { state: 'FAILED', reason: 'no executor matches' }));
    a.backendProbed('etcd', 0.002);
    a.backendProbed('nats', undefined);
    const p = parsePromText(await a.text());
    expect(p.value('grid_executions_created_total', { job: 'deploy' })).toBe(1);
    expect(p.value('grid_executions_total', { job: 'deploy', state: 'FAILED' })).toBe(1);
    expect(p.value('grid_etcd_round_trip_seconds_count')).toBe(1);
    expect(p.value('grid_backend_up', { backend: 'etcd' })).toBe(1);
    expect(p.value('grid_backend_up', { backend: 'nats' })).toBe(0);
    expect(p.value('grid_backend_probe_failures_total', { backend: 'nats' })).toBe(1);
    expect(parsePromText(await b.text()).value('grid_executions_total', { job: 'deploy', state: 'FAILED' })).toBeUndefined();
    // A record an older version wrote, without times: counted, never a NaN observation (prom-client would throw).
    const old = { ...task({ state: 'RUNNING', attempts: 1 }), started_at_ms: undefined } as unknown as Task;
    expect(() => b.recordWritten(execution([task()]), execution([old]))).not.toThrow();
    expect(() => b.recordWritten(execution([old]), execution([{ ...old, state: 'SUCCEEDED' }]))).not.toThrow();
    expect(parsePromText(await b.text()).value('grid_tasks_total', { job: 'deploy', state: 'SUCCEEDED' })).toBe(1);
  });
});

describe('Readiness', () => {
  it('is ready while both probes answer; a probe that throws or hangs past the timeout makes it not ready until one answers again', async () => {
    const answer: Record<'etcd' | 'nats', 'ok' | 'throw' | 'hang'> = { etcd: 'ok', nats: 'ok' };
    const probe = (b: 'etcd' | 'nats') => async () => {
      if (answer[b] === 'throw') throw new Error(`${b} refused`);
      if (answer[b] === 'hang') await delay(1_000);
      return 0.001;
    };
    const seen: Array<[string, number | undefined]> = [];
    const r = new Readiness({ probes: { etcd: probe('etcd'), nats: probe('nats') }, intervalMs: 20, timeoutMs: 100, log: silentLogger, onProbe: (b, s) => seen.push([b, s]) });
    const changes: boolean[] = [];
    r.onChange((ready) => changes.push(ready));
    const backendChanges: string[] = [];
    r.onBackendChange((b, up) => backendChanges.push(`${b} ${up ? 'up' : 'down'}`));
    await r.start();
    expect(r.status()).toEqual({ ready: true, backends: { etcd: true, nats: true } });
    const until = async (want: boolean) => {
      for (let i = 0; i < 100 && r.ready() !== want; i++) await delay(10);
      return r.ready();
    };
    answer.nats = 'throw';
    expect(await until(false)).toBe(false);
    expect(r.status().backends).toEqual({ etcd: true, nats: false });
    answer.nats = 'ok';
    expect(await until(true)).toBe(true);
    answer.etcd = 'hang';
    expect(await until(false)).toBe(false);
    expect(seen).toContainEqual(['etcd', undefined]);
    answer.etcd = 'ok';
    expect(await until(true)).toBe(true);
    r.stop();
    expect(r.ready()).toBe(false);
    expect(changes).toEqual([true, false, true, false, true, false]);
    expect(backendChanges).toEqual(['nats down', 'nats up', 'etcd down', 'etcd up']);
  });
});

describe('the HTTP door\'s /livez, /readyz and /metrics', () => {
  const METRICS = 'unit-metrics-token-0000000';
  const SCOPED = 'unit-scoped-viewer-token-11';
  let api: HttpApi;
  let ready = true;
  beforeAll(async () => {
    const auth = new Authenticator('tokens', [
      { name: 'prometheus', token: METRICS, role: 'metrics', groups: [] },
      { name: 'web-viewer', token: SCOPED, role: 'viewer', groups: ['web'] },
    ]);
    const metrics = new ControllerMetrics();
    metrics.heartbeat('accepted');
    const readiness = { status: () => ({ ready, backends: { etcd: ready, nats: true } }) };
    const uc = { jobs: new JobService(new MemoryJobStore(Date.now)) } as unknown as HttpUseCases;
    api = await buildHttpApi(uc, { auth, log: silentLogger }, { ops: { readiness, metrics } });
  });
  afterAll(async () => api.app.close());
  const get = (url: string, token?: string) => api.app.inject({ method: 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('answers /livez and /readyz without a token; /readyz is 503 while a backend is down', async () => {
    expect((await get('/livez')).json()).toEqual({ status: 'ok' });
    const up = await get('/readyz');
    expect([up.statusCode, up.json()]).toEqual([200, { status: 'ready', backends: { etcd: 'up', nats: 'up' } }]);
    ready = false;
    const down = await get('/readyz');
    expect([down.statusCode, down.json(), down.headers['retry-after']]).toEqual([503, { status: 'not_ready', backends: { etcd: 'down', nats: 'up' } }, '1']);
    ready = true;
  });

  it('serves /metrics in the text format to a metrics token, and to nobody without one or with groups; that token reads nothing else', async () => {
    expect((await get('/metrics')).statusCode).toBe(401);
    const scoped = await get('/metrics', SCOPED);
    expect([scoped.statusCode, scoped.json().error.kind]).toEqual([403, 'permission_denied']);
    const ok = await get('/metrics', METRICS);
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(parsePromText(ok.body).value('grid_heartbeats_total', { result: 'accepted' })).toBe(1);
    const jobs = await get('/v1/jobs', METRICS);
    expect([jobs.statusCode, jobs.json().error.message]).toEqual([403, 'prometheus (role metrics) may not read jobs; that needs role viewer or higher']);
  });
});

describe('the executor\'s metrics_address', () => {
  it('serves /metrics, /livez and /readyz (503 while a link is down or it drains) without a token; nothing else', async () => {
    const links = { controller: true, nats: true };
    let running = true;
    const metrics = new ExecutorMetrics({ running: () => 2, links: () => links });
    metrics.taskFinished('succeeded', 1.5);
    metrics.taskFinished('failed', 0.2);
    metrics.heartbeat(true);
    metrics.heartbeat(false);
    const ops = await serveExecutorOps({ address: '127.0.0.1:0', metrics, status: () => ({ running, links }), log: silentLogger });
    const at = (path: string, method = 'GET') => fetch(`http://${ops.address}${path}`, { method });
    try {
      const m = parsePromText(await (await at('/metrics')).text());
      expect(m.value('grid_executor_tasks_total', { outcome: 'succeeded' })).toBe(1);
      expect(m.value('grid_executor_task_duration_seconds_sum', { outcome: 'failed' })).toBe(0.2);
      expect(m.value('grid_executor_tasks_running')).toBe(2);
      expect(m.value('grid_executor_heartbeats_total', { result: 'failed' })).toBe(1);
      expect(m.value('grid_executor_connected', { link: 'nats' })).toBe(1);
      expect((await at('/readyz')).status).toBe(200);
      links.nats = false;
      const down = await at('/readyz');
      expect([down.status, await down.json()]).toEqual([503, { status: 'not_ready', running: true, links: { controller: 'up', nats: 'down' } }]);
      links.nats = true;
      running = false;
      expect((await at('/readyz')).status).toBe(503);
      expect((await at('/livez')).status).toBe(200);
      expect((await at('/v1/jobs')).status).toBe(404);
      expect((await at('/metrics', 'POST')).status).toBe(405);
    } finally {
      await ops.close();
    }
  });
});

describe('the strict text-format reader', () => {
  it('reads prom-client\'s output and refuses what Prometheus would', async () => {
    const m = new ControllerMetrics();
    m.recordWritten(undefined, execution([task()]));
    expect(parsePromText(await m.text()).families.get('grid_task_start_latency_seconds')?.type).toBe('histogram');
    const bad: Array<[string, RegExp]> = [
      ['x{a="b" 1\n', /not a sample|labels/],
      ['this is not a sample\n', /not a sample/],
      ['x{a="1"} one\n', /not a number/],
      ['# TYPE x counter\nx -1\n', /negative/],
      ['# TYPE x counter\n# TYPE x gauge\nx 1\n', /second TYPE/],
      ['x 1\ny 1\nx{a="b"} 2\n', /split apart/],
      ['x 1\nx 2\n', /given already/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not cumulative/],
      ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n', /is not _count/],
      ['x 1', /newline/],
    ];
    for (const [text, why] of bad) expect(() => parsePromText(text), text).toThrow(why);
  });
});
