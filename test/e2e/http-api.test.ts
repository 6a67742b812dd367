// The HTTP/JSON door of a real controller (real nats-server, etcd and a host executor), driven
// with Node's fetch over HTTPS with the test CA: every route, every error status, an NDJSON log
// follow cut off and resumed by offset, an SSE stream cut off and resumed by Last-Event-ID
// without losing an event, the OpenAPI document, plain HTTP when TLS is off, and 503 once etcd
// is gone.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCa } from '../harness/grpc-tls.js';
import { startExecutor, stopExecutors } from '../harness/executor-process.js';
import { cleanupProcesses, REPO_ROOT, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const WEB_TOKEN = 'e2e-http-web-scoped-token-555';
const STREAMS_PER_TOKEN = 4;

let servers: TestServers;
let controller: RunningController;
let base: string;
let dispatcher: Agent;
let executorName: string;
let fastJob: string;
let chattyJob: string;

type Role = keyof typeof TOKENS | 'web' | 'none';
const tokenOf = (as: Role) => (as === 'none' ? undefined : as === 'web' ? WEB_TOKEN : TOKENS[as]);

interface Answer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Headers;
}

async function call(method: string, path: string, o: { as?: Role; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const token = tokenOf(o.as ?? 'admin');
  const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...o.headers };
  let payload: string | undefined;
  if (o.raw !== undefined || o.body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = o.raw ?? JSON.stringify(o.body);
  }
  const res = await fetch(base + path, { method, headers, body: payload, dispatcher } as RequestInit);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

function expectError(a: Answer, status: number, kind: string, field?: string): void {
  expect(a.status, JSON.stringify(a.body)).toBe(status);
  expect(a.body.error.kind).toBe(kind);
  expect(typeof a.body.error.message).toBe('string');
  if (field !== undefined) expect(a.body.error.field).toBe(field);
}

/** Executes `job` over HTTP as operator and waits until it has ended; returns its status body. */
async function executeAndWait(job: string, body: Record<string, unknown> = {}): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const started = await call('POST', `/v1/jobs/${job}/executions`, { as: 'operator', body });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  return waitEnded(started.body.executionId);
}

async function waitEnded(id: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  for (let i = 0; i < 150; i++) {
    const s = await call('GET', `/v1/executions/${id}`);
    if (['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(s.body.state)) return s.body;
    await delay(200);
  }
  throw new Error(`execution ${id} did not end`);
}

/** A streamed GET: the response, and a reader of its body as text. */
async function open(path: string, o: { as?: Role; headers?: Record<string, string>; signal?: AbortSignal } = {}) {
  const token = tokenOf(o.as ?? 'admin');
  const res = await fetch(base + path, {
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...o.headers },
    signal: o.signal,
    dispatcher,
  } as RequestInit);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return {
    res,
    /** The next piece ending in `sep` (a line, an SSE event), or undefined at the end. */
    async next(sep: string): Promise<string | undefined> {
      for (;;) {
        const at = buffered.indexOf(sep);
        if (at >= 0) {
          const piece = buffered.slice(0, at);
          buffered = buffered.slice(at + sep.length);
          return piece;
        }
        const r = await reader.read();
        if (r.done) return undefined;
        buffered += decoder.decode(r.value, { stream: true });
      }
    },
    cancel: () => reader.cancel().catch(() => undefined),
  };
}

interface LogLine {
  executor: string;
  executor_id: string;
  stream: string;
  line: string;
  offset: number;
}

async function readLogs(path: string, stopAfter = Infinity): Promise<LogLine[]> {
  const s = await open(path);
  expect(s.res.status).toBe(200);
  expect(s.res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
  const lines: LogLine[] = [];
  for (;;) {
    if (lines.length >= stopAfter) {
      await s.cancel();
      return lines;
    }
    const text = await s.next('\n');
    if (text === undefined) return lines;
    lines.push(JSON.parse(text) as LogLine);
  }
}

interface SseEvent {
  event: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  id?: number;
}

function parseSse(block: string): SseEvent | undefined {
  const e: Partial<SseEvent> = {};
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const [field, ...rest] = line.split(':');
    const value = rest.join(':').replace(/^ /, '');
    if (field === 'event') e.event = value;
    else if (field === 'data') e.data = JSON.parse(value);
    else if (field === 'id') e.id = Number(value);
  }
  return e.event ? (e as SseEvent) : undefined;
}

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: {
      tokens: [
        ...Object.entries(TOKENS).map(([role, token]) => ({ name: role, token, role })),
        { name: 'web-ops', token: WEB_TOKEN, role: 'operator', groups: ['web'] },
      ],
      limits: { streams_per_token: STREAMS_PER_TOKEN },
    },
  });
  const address = /http ready address=(\S+) tls=on/.exec(controller.logs())![1]!;
  base = `https://${address}`;
  // The controller's certificate is issued by the test CA: fetch trusts it through undici.
  dispatcher = new Agent({ connect: { ca: testCa().pem } });
  executorName = uniqueName('http-web');
  await startExecutor({ controller: controller.address, name: executorName, groups: ['web'], config: { runners: ['host'] } });
  fastJob = uniqueName('http-fast');
  chattyJob = uniqueName('http-chatty');
  for (const [name, shell] of [
    [fastJob, 'echo hello $NAME'],
    [chattyJob, 'for i in 1 2 3 4 5 6; do echo line $i; sleep 0.3; done'],
  ]) {
    const r = await call('POST', '/v1/jobs', {
      body: { name, description: 'an HTTP API test job', shell, env_vars: { args: [{ name: 'NAME', description: 'who', default: 'world' }] } },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
}, 120_000);

afterAll(async () => {
  await dispatcher?.close();
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

describe('HTTP API', () => {
  it('creates, reads, replaces and deletes a job from Octavius\'s metadata.json, with the audit log recording via http', async () => {
    const octavius = JSON.parse(readFileSync(join(REPO_ROOT, 'config/examples/octavius.json'), 'utf8')) as Record<string, unknown>;
    const name = uniqueName('octavius');
    const metadata = JSON.stringify({ ...octavius, name }, null, 2);
    const created = await call('POST', '/v1/jobs', { raw: metadata });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ version: 1, created_by: 'admin', definition: { name, runner: 'kubernetes', image_name: octavius.image_name, author: 'Ada Lovelace' } });
    expectError(await call('POST', '/v1/jobs', { raw: metadata }), 409, 'already_exists');

    const listed = await call('GET', '/v1/jobs', { as: 'viewer' });
    expect(listed.status).toBe(200);
    expect(listed.body.jobs.map((j: { definition: { name: string } }) => j.definition.name)).toContain(name);
    expect((await call('GET', `/v1/jobs/${name}`, { as: 'viewer' })).body.definition.description).toBe(octavius.description);

    const replaced = await call('PUT', `/v1/jobs/${name}`, { body: { ...octavius, name, description: 'replaced over HTTP' } });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ version: 2, definition: { description: 'replaced over HTTP' } });
    expectError(await call('PUT', `/v1/jobs/${name}`, { body: { ...octavius, name: 'other' } }), 400, 'validation', 'name');
    expectError(await call('POST', '/v1/jobs', { body: { ...octavius, name: uniqueName('typo'), timeut_seconds: 3 } }), 400, 'validation', 'timeut_seconds');
    expectError(await call('POST', '/v1/jobs', { as: 'viewer', raw: metadata }), 403, 'permission_denied');
    expectError(await call('POST', '/v1/jobs', { as: 'none', raw: metadata }), 401, 'unauthenticated');

    expect(await call('DELETE', `/v1/jobs/${name}`)).toMatchObject({ status: 200, body: { deleted: name } });
    expectError(await call('GET', `/v1/jobs/${name}`), 404, 'not_found');
    expectError(await call('DELETE', `/v1/jobs/${name}`), 404, 'not_found');

    const dataDir = (JSON.parse(readFileSync(controller.configFile, 'utf8')) as { data_dir: string }).data_dir;
    const audit = readFileSync(join(dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const mine = audit.filter((l) => l.target === name);
    expect(mine.map((l) => [l.via, l.action, l.result])).toEqual([
      ['http', 'job.create', 'ok'],
      ['http', 'job.create', 'already_exists'],
      ['http', 'job.replace', 'ok'],
      ['http', 'job.replace', 'validation'],
      ['http', 'job.create', 'permission_denied'],
      ['http', 'job.create', 'unauthenticated'],
      ['http', 'job.delete', 'ok'],
      ['http', 'job.delete', 'not_found'],
    ]);
    expect(mine.find((l) => l.result === 'permission_denied')!.who).toEqual({ kind: 'operator', name: 'viewer', role: 'viewer' });
  });

  it('executes once per idempotency key, and answers status with the workers map (also at /tasks/{id}/status)', async () => {
    const key = uniqueName('key');
    const first = await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { args: { NAME: 'http' } }, headers: { 'idempotency-key': key } });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toMatchObject({ reused: false, execution: { id: first.body.executionId, job: fastJob, state: expect.any(String) } });
    const again = await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { args: { NAME: 'http' }, idempotency_key: key } });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ executionId: first.body.executionId, reused: true });
    expectError(await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { args: { NAME: 'else' } }, headers: { 'idempotency-key': key } }), 409, 'failed_precondition');

    const status = await waitEnded(first.body.executionId);
    expect(status).toMatchObject({ id: first.body.executionId, state: 'SUCCEEDED', args: { NAME: 'http' } });
    expect(status.workers).toEqual({
      [executorName]: { state: 'SUCCEEDED', exit_code: 0, attempts: 1, started_at: expect.any(String), finished_at: expect.any(String), reason: 'exit code 0' },
    });
    const counts = await call('GET', `/v1/executions/counts?job=${fastJob}`, { as: 'viewer' });
    expect(counts.status).toBe(200);
    expect(counts.body.counts.SUCCEEDED).toBeGreaterThanOrEqual(1);
    expect(Object.keys(counts.body.counts)).toEqual(['QUEUED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);
    expect(counts.body.at_least).toEqual([]);
    const alias = await call('GET', `/tasks/${first.body.executionId}/status`, { as: 'viewer' });
    expect(alias.status).toBe(200);
    expect(alias.body).toEqual(status);

    const dry = await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { dry_run: true, target: 'group:web' } });
    expect(dry.status).toBe(200);
    expect(dry.body.dryRun).toEqual([expect.objectContaining({ executorName, skipped: false })]);

    expectError(await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { timeout_seconds: -1 } }), 400, 'validation', 'timeout_seconds');
    const undeclared = await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { args: { NOPE: '1' } } });
    expectError(undeclared, 400, 'validation', 'args.NOPE');
    expect(undeclared.body.error.problems).toEqual([{ field: 'args.NOPE', message: expect.stringContaining('not declared') }]);
    expectError(await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { wait_offline: 'soon' } }), 400, 'validation');
    expectError(await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'viewer', body: {} }), 403, 'permission_denied');
    expectError(await call('POST', `/v1/jobs/${uniqueName('missing')}/executions`, { as: 'operator', body: {} }), 404, 'not_found');
    expectError(await call('GET', '/v1/executions/01M92PSHNMKJTY53HFW5AW6TS2'), 404, 'not_found');
  });

  it('starts an execution with POST /tasks, lists executions a page at a time, and cancels', async () => {
    const task = await call('POST', '/tasks', { as: 'operator', body: { job: fastJob, args: { NAME: 'alias' }, target: 'group:web' } });
    expect(task.status, JSON.stringify(task.body)).toBe(201);
    await waitEnded(task.body.executionId);
    expectError(await call('POST', '/tasks', { as: 'operator', body: { args: {} } }), 400, 'validation', 'job');

    const page1 = await call('GET', `/v1/executions?job=${fastJob}&limit=1`, { as: 'viewer' });
    expect(page1.status).toBe(200);
    expect(page1.body.executions).toHaveLength(1);
    expect(page1.body.executions[0].id).toBe(task.body.executionId);
    expect(page1.body).toMatchObject({ next_cursor: task.body.executionId, pruned_before_ms: 0, retention: expect.any(String) });
    const page2 = await call('GET', `/v1/executions?job=${fastJob}&limit=1&cursor=${page1.body.next_cursor}`, { as: 'viewer' });
    expect(page2.body.executions).toHaveLength(1);
    expect(page2.body.executions[0].id < task.body.executionId).toBe(true);
    expect((await call('GET', `/v1/executions?state=succeeded&job=${fastJob}`)).body.executions.length).toBeGreaterThanOrEqual(2);
    expectError(await call('GET', '/v1/executions?state=DONE'), 400, 'validation', 'state');
    expectError(await call('GET', '/v1/executions?limit=5000'), 400, 'validation', 'limit');

    const long = await call('POST', `/v1/jobs/${chattyJob}/executions`, { as: 'operator', body: {} });
    expectError(await call('POST', `/v1/executions/${long.body.executionId}/cancel`, { as: 'viewer', body: {} }), 403, 'permission_denied');
    const cancelled = await call('POST', `/v1/executions/${long.body.executionId}/cancel`, { as: 'operator', body: { reason: 'over HTTP' } });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ state: 'CANCELLED', reason: 'cancelled by operator: over HTTP' });
    expectError(await call('POST', `/v1/executions/${long.body.executionId}/cancel`, { as: 'operator' }), 409, 'failed_precondition');
  });

  it('keeps a scoped token to its groups, in its event stream too', async () => {
    const events = await open('/v1/events', { as: 'web' });
    const outside = await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { target: 'all' } });
    expectError(await call('GET', `/v1/executions/${outside.body.executionId}`, { as: 'web' }), 403, 'permission_denied');
    expectError(await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'web', body: { target: 'all' } }), 403, 'permission_denied');
    await waitEnded(outside.body.executionId);
    const inside = await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'web', body: { target: 'group:web' } });
    expect(inside.status).toBe(201);
    const seen: string[] = [];
    for (;;) {
      const e = parseSse((await events.next('\n\n'))!);
      if (e?.event !== 'execution') continue;
      seen.push(e.data.id);
      if (e.data.id === inside.body.executionId && e.data.state === 'SUCCEEDED') break;
    }
    await events.cancel();
    expect(seen).toContain(inside.body.executionId);
    expect(seen).not.toContain(outside.body.executionId);
  });

  it('lists and describes executors', async () => {
    const list = await call('GET', '/v1/executors', { as: 'viewer' });
    expect(list.status).toBe(200);
    const me = list.body.executors.find((e: { name: string }) => e.name === executorName);
    expect(me).toMatchObject({ state: 'ACTIVE', groups: ['web'], runners: ['host'] });
    expect((await call('GET', `/v1/executors/${me.id}`)).body).toMatchObject({ name: executorName });
    expect((await call('GET', `/v1/executors/${executorName}`)).body).toMatchObject({ id: me.id });
    expectError(await call('GET', `/v1/executors/${uniqueName('nobody')}`), 404, 'not_found');
  });

  it('follows logs as NDJSON, and resumes by offset without a gap or a repeat', async () => {
    const started = await call('POST', `/v1/jobs/${chattyJob}/executions`, { as: 'operator', body: {} });
    const id = started.body.executionId as string;
    const path = `/v1/executions/${id}/logs?follow=1`;
    // Cut off after two lines; resume from the last offset whose lines are all here (the one
    // before the last offset seen), leaving out the lines of that last chunk, which come again.
    const head = await readLogs(path, 2);
    const lastOffset = head[head.length - 1]!.offset;
    const complete = head.filter((l) => l.offset < lastOffset);
    const resumeAt = complete.length ? complete[complete.length - 1]!.offset : 0;
    const tail = await readLogs(`${path}&offset=${resumeAt}`);
    const joined = [...complete, ...tail];
    expect(joined.map((l) => l.line)).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6']);
    for (const l of joined) expect(l).toMatchObject({ executor: executorName, stream: 'stdout', executor_id: expect.any(String) });
    const offsets = joined.map((l) => l.offset);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    expect((await waitEnded(id)).state).toBe('SUCCEEDED');

    // Read again after the end (chunks that arrived apart may now come joined, under the offset
    // of the last): the whole log, then after an offset seen live, then only one executor's.
    const text = (lines: LogLine[]) => lines.map((l) => l.line);
    const all = await readLogs(`/v1/executions/${id}/logs`);
    expect(text(all)).toEqual(text(joined));
    expect(all[all.length - 1]!.offset).toBe(joined[joined.length - 1]!.offset);
    const third = joined[2]!.offset;
    expect(text(await readLogs(`/v1/executions/${id}/logs?offset=${third}`))).toEqual(text(joined.filter((l) => l.offset > third)));
    expect(text(await readLogs(`/v1/executions/${id}/logs?executor=${executorName}`))).toEqual(text(all));
    expectError(await call('GET', `/v1/executions/${id}/logs`, { as: 'viewer' }), 403, 'permission_denied');
    expectError(await call('GET', `/v1/executions/${id}/logs?executor=nobody`), 404, 'not_found');
    expectError(await call('GET', `/v1/executions/${id}/logs?offset=-1`), 400, 'validation', 'offset');
  });

  it('streams events, resumed by Last-Event-ID without losing or repeating one', async () => {
    const N = 4;
    const control = await open('/v1/events', { as: 'viewer' });
    expect(control.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const cut = await open('/v1/events', { as: 'viewer' });
    const firstControl = parseSse((await control.next('\n\n'))!)!;
    const firstCut = parseSse((await cut.next('\n\n'))!)!;
    expect(firstControl.event).toBe('reset');
    expect(firstCut.event).toBe('reset');
    expect(firstCut.data.executors.map((e: { name: string }) => e.name)).toContain(executorName);

    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const r = await call('POST', `/v1/jobs/${fastJob}/executions`, { as: 'operator', body: { args: { NAME: `sse-${i}` } } });
      ids.push(r.body.executionId);
    }
    const mine = (e: SseEvent) => e.event === 'execution' && ids.includes(e.data.id);
    const ended = (seen: SseEvent[]) => ids.every((id) => seen.some((e) => mine(e) && e.data.id === id && e.data.state === 'SUCCEEDED'));
    const collect = async (s: Awaited<ReturnType<typeof open>>, seen: SseEvent[], stop: (seen: SseEvent[]) => boolean, lastId: { value?: number }) => {
      while (!stop(seen)) {
        const block = await s.next('\n\n');
        if (block === undefined) throw new Error('event stream ended');
        const e = parseSse(block);
        if (!e) continue;
        if (e.id !== undefined) lastId.value = e.id;
        seen.push(e);
      }
    };
    // The cut stream: two events of these executions, then disconnected while they go on.
    const cutSeen: SseEvent[] = [];
    const cutLast: { value?: number } = { value: firstCut.id };
    await collect(cut, cutSeen, (seen) => seen.filter(mine).length >= 2, cutLast);
    await cut.cancel();
    await delay(1500);
    const resumed = await open('/v1/events', { as: 'viewer', headers: { 'last-event-id': String(cutLast.value) } });
    await collect(resumed, cutSeen, ended, cutLast);
    await resumed.cancel();
    const controlSeen: SseEvent[] = [];
    await collect(control, controlSeen, ended, {});
    await control.cancel();

    const trail = (seen: SseEvent[]) => seen.filter(mine).map((e) => `${e.data.id} ${e.data.state} ${e.data.updatedAtMs}`);
    expect(trail(cutSeen).length).toBeGreaterThanOrEqual(N * 2);
    expect(trail(cutSeen)).toEqual(trail(controlSeen));
    expect(cutSeen.some((e) => e.event === 'reset')).toBe(false);

    expectError(await call('GET', '/v1/events', { headers: { 'last-event-id': 'yesterday' } }), 400, 'validation', 'last-event-id');
  });

  it('starts again with a reset when etcd has compacted the revision asked to resume from', async () => {
    const etcd = new Etcd3({ hosts: servers.etcdEndpoint });
    try {
      const now = Number((await etcd.get('/').exec()).header.revision);
      await etcd.put(`/${uniqueName('bump')}`).value('x');
      await etcd.kv.compact({ revision: String(now + 1), physical: true });
      const s = await open('/v1/events', { as: 'viewer', headers: { 'last-event-id': String(now - 5) } });
      expect(s.res.status).toBe(200);
      const first = parseSse((await s.next('\n\n'))!)!;
      await s.cancel();
      expect(first).toMatchObject({ event: 'reset', data: { reason: 'resumed' } });
      expect(first.id).toBeGreaterThan(now);
      expect(first.data.executors.map((e: { name: string }) => e.name)).toContain(executorName);
    } finally {
      etcd.close();
    }
  });

  it(`refuses the ${STREAMS_PER_TOKEN + 1}th open stream of one token with 429`, async () => {
    // As operator, whose earlier streams (the log follows are admin's) cannot still be closing.
    const held = [];
    for (let i = 0; i < STREAMS_PER_TOKEN; i++) {
      const s = await open('/v1/events', { as: 'operator' });
      expect(s.res.status).toBe(200);
      held.push(s);
    }
    const refused = await call('GET', `/v1/executions/${uniqueName('any')}/logs?follow=1`, { as: 'operator' });
    expectError(refused, 429, 'resource_exhausted');
    expect(refused.headers.get('retry-after')).toBe('1');
    for (const s of held) await s.cancel();
    // Slots are given back once the streams have ended.
    for (let i = 0; i < 50; i++) {
      const again = await open('/v1/events', { as: 'operator' });
      if (again.res.status === 200) {
        await again.cancel();
        return;
      }
      await again.cancel();
      await delay(100);
    }
    throw new Error('stream slots were not given back');
  });

  it('documents its routes at /v1/openapi.json, readable without a token', async () => {
    const doc = await call('GET', '/v1/openapi.json', { as: 'none' });
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/jobs', '/v1/jobs/{name}/executions', '/v1/executions/counts', '/v1/executions/{id}/logs', '/v1/events', '/tasks']));
    expectError(await call('GET', '/v1/nothing'), 404, 'not_found');
  });

  it('serves plain HTTP when tls.enabled is false', async () => {
    const plain = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, config: { tls: { enabled: false } } });
    const address = /http ready address=(\S+) tls=off/.exec(plain.logs())![1]!;
    const res = await fetch(`http://${address}/v1/executors`, { headers: { authorization: `Bearer ${TOKENS.viewer}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ executors: [] });
    await plain.stop();
  });

  it('answers 503 while etcd is down', async () => {
    await servers.nodes.etcd[0]!.stop();
    let last: Answer | undefined;
    for (let i = 0; i < 30; i++) {
      last = await call('GET', `/v1/executions?job=${fastJob}`);
      if (last.status === 503) break;
      await delay(500);
    }
    expectError(last!, 503, 'unavailable');
    expect(last!.body.error.message).toMatch(/etcd at .* is not answering/);
  });
});
