// The HTTP door without servers (Fastify's inject, use-cases stubbed): every route is in
// /v1/openapi.json and every documented path is a route; errors have one shape and the status
// errors.ts gives their kind; schema failures name the field; mutating calls are audited.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/controller/audit.js';
import { Authenticator } from '../../src/controller/auth.js';
import { sseBatch } from '../../src/controller/doors/http/events.js';
import { HeartbeatDelta } from '../../src/controller/events.js';
import { chunkLines } from '../../src/controller/doors/http/logs.js';
import { buildHttpApi, type HttpApi, type HttpUseCases } from '../../src/controller/doors/http/server.js';
import {
  AlreadyExistsError, ConflictError, DeadlineExceededError, FailedPreconditionError, InternalError, LimitExceededError,
  NotFoundError, PermissionDeniedError, UnauthenticatedError, UnavailableError, ValidationError, toHttpStatus,
} from '../../src/errors.js';
import { silentLogger } from '../../src/util/log.js';
import { MemorySink } from '../harness/audit-sink.js';

const ADMIN = 'unit-admin-token-000000000';
const VIEWER = 'unit-viewer-token-11111111';

let api: HttpApi;
const sink = new MemorySink();
/** What the stubbed execution get throws next. */
let getThrows: Error | undefined;

beforeAll(async () => {
  const auth = new Authenticator('tokens', [
    { name: 'admin', token: ADMIN, role: 'admin', groups: [] },
    { name: 'viewer', token: VIEWER, role: 'viewer', groups: [] },
  ]);
  const uc = {
    jobs: {
      create: async () => {
        throw new AlreadyExistsError('job', 'hello', 'use PUT to replace it');
      },
    },
    executions: {
      get: async () => {
        throw getThrows ?? new Error('unset');
      },
    },
  } as unknown as HttpUseCases;
  api = await buildHttpApi(uc, { auth, log: silentLogger, audit: new AuditLog(sink, silentLogger) });
});
afterAll(async () => api.app.close());

const auth = (token = ADMIN) => ({ authorization: `Bearer ${token}` });

describe('HTTP door', () => {
  it('documents every route in /v1/openapi.json, and nothing else', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/v1/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    const registered = api.routes.map((r) => r.replace(/:(\w+)/g, '{$1}')).sort();
    expect(documented).toEqual(registered);
    const body = (path: string, method: string) => (doc.paths[path]![method] as { requestBody: { required: boolean } }).requestBody;
    expect(body('/v1/jobs', 'post').required).toBe(true);
    expect(body('/v1/jobs/{name}/executions', 'post').required).toBe(false);
    expect(body('/v1/executions/{id}/cancel', 'post').required).toBe(false);
    expect(JSON.stringify(doc)).not.toContain('x-optional-body');
    expect(registered).toEqual(expect.arrayContaining([
      'GET /v1/jobs', 'POST /v1/jobs', 'GET /v1/jobs/{name}', 'PUT /v1/jobs/{name}', 'DELETE /v1/jobs/{name}',
      'POST /v1/jobs/{name}/executions', 'GET /v1/executions', 'GET /v1/executions/{id}', 'POST /v1/executions/{id}/cancel',
      'GET /v1/executions/{id}/logs', 'GET /v1/executors', 'GET /v1/executors/{id}', 'GET /v1/events',
      'POST /tasks', 'GET /tasks/{id}/status', 'GET /v1/openapi.json',
    ]));
  });

  it('maps each error kind to its HTTP status', () => {
    const cases: Array<[Error, number]> = [
      [new ValidationError('x'), 400], [new UnauthenticatedError('x'), 401], [new PermissionDeniedError('x'), 403],
      [new NotFoundError('job', 'x'), 404], [new AlreadyExistsError('job', 'x'), 409], [new ConflictError('job', 'x'), 409],
      [new FailedPreconditionError('x'), 409], [new LimitExceededError('k', 'x'), 429], [new InternalError('x'), 500],
      [new UnavailableError('x'), 503], [new DeadlineExceededError('x'), 504], [new Error('x'), 500],
    ];
    for (const [err, status] of cases) expect(toHttpStatus(err), err.constructor.name).toBe(status);
  });

  it('answers a use-case error in one shape, with its status', async () => {
    getThrows = new NotFoundError('execution', '01NOPE');
    const notFound = await api.app.inject({ method: 'GET', url: '/v1/executions/01NOPE', headers: auth() });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.json()).toEqual({ error: { kind: 'not_found', message: 'execution "01NOPE" not found' } });
    getThrows = new UnavailableError('etcd at http://e:2379 is not answering; retry (timeout)');
    const down = await api.app.inject({ method: 'GET', url: '/tasks/01X/status', headers: auth() });
    expect(down.statusCode).toBe(503);
    expect(down.headers['retry-after']).toBe('1');
    expect(down.json().error.kind).toBe('unavailable');
  });

  it('refuses a missing or unknown token with 401 before any use-case runs', async () => {
    const none = await api.app.inject({ method: 'GET', url: '/v1/executions/01X' });
    expect(none.statusCode).toBe(401);
    expect(none.json().error.kind).toBe('unauthenticated');
    const bad = await api.app.inject({ method: 'GET', url: '/v1/executions/01X', headers: auth('not-a-token-at-all-000') });
    expect(bad.statusCode).toBe(401);
  });

  it('names the field a request fails its schema on', async () => {
    const typed = await api.app.inject({ method: 'POST', url: '/v1/jobs/hello/executions', headers: auth(), payload: { timeout_seconds: 'soon' } });
    expect(typed.statusCode).toBe(400);
    expect(typed.json().error).toMatchObject({ kind: 'validation', field: 'timeout_seconds' });
    const unknown = await api.app.inject({ method: 'POST', url: '/v1/jobs/hello/executions', headers: auth(), payload: { targt: 'all' } });
    expect(unknown.json().error).toMatchObject({ kind: 'validation', field: 'targt', message: 'targt: unknown field' });
    const nested = await api.app.inject({ method: 'POST', url: '/tasks', headers: auth(), payload: { job: 'hello', args: { N: { a: 1 } } } });
    expect(nested.json().error).toMatchObject({ field: 'args.N' });
    const missing = await api.app.inject({ method: 'POST', url: '/tasks', headers: auth(), payload: {} });
    expect(missing.json().error).toMatchObject({ field: 'job', message: 'job: missing; it is required' });
    const query = await api.app.inject({ method: 'GET', url: '/v1/executions?limit=0', headers: auth() });
    expect(query.statusCode).toBe(400);
    expect(query.json().error.field).toBe('limit');
    const notJson = await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...auth(), 'content-type': 'application/json' }, payload: '{"name": ' });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json().error.kind).toBe('validation');
  });

  it('answers an unknown route with 404 in the same shape', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/v1/nothing?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ kind: 'not_found', message: 'route "GET /v1/nothing" not found (see /v1/openapi.json)' });
  });

  it('audits a refused write with via http, without the token', async () => {
    sink.lines = [];
    const res = await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: { name: 'hello', description: 'd', command: ['true'] } });
    expect(res.statusCode).toBe(409);
    expect(sink.lines).toHaveLength(1);
    const line = JSON.parse(sink.lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ via: 'http', who: { kind: 'operator', name: 'admin', role: 'admin' }, action: 'job.create', target: 'hello', result: 'already_exists' });
    expect(sink.lines[0]).not.toContain(ADMIN);
  });

  it('writes the changes of one revision as SSE events with the revision as the id of the last', () => {
    expect(sseBatch({ revision: 9, events: [{ type: 'executor_removed', id: 'a' }, { type: 'execution_deleted', id: 'b' }] })).toBe(
      'event: executor_removed\ndata: {"id":"a"}\n\nevent: execution_deleted\ndata: {"id":"b"}\nid: 9\n\n',
    );
  });

  it('writes heartbeats as an SSE event without an id (they are not replayed), and only those that are new', () => {
    expect(sseBatch({ events: [{ type: 'heartbeats', executors: [{ id: 'E1', last_seen_at_ms: 5, running_tasks: 1, load: 0.5 }] }] })).toBe(
      'event: heartbeats\ndata: {"executors":[{"id":"E1","lastSeenAtMs":5,"runningTasks":1,"load":0.5}]}\n\n',
    );
    let seen = [{ id: 'E1', last_seen_at_ms: 5, running_tasks: 0, load: 0 }, { id: 'E2', last_seen_at_ms: 6, running_tasks: 0, load: 0 }];
    const delta = new HeartbeatDelta(() => seen);
    expect(delta.next().map((h) => h.id)).toEqual(['E1', 'E2']);
    expect(delta.next()).toEqual([]);
    seen = [{ ...seen[0]!, last_seen_at_ms: 7 }, seen[1]!];
    expect(delta.next().map((h) => [h.id, h.last_seen_at_ms])).toEqual([['E1', 7]]);
  });

  it('lists every validation problem with its field, for a form to show each beside its own', async () => {
    getThrows = new ValidationError([{ path: 'args.COUNT', message: 'not an int' }, { path: 'args.TOKEN', message: 'missing' }]);
    const res = await api.app.inject({ method: 'GET', url: '/v1/executions/01X', headers: auth() });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({
      kind: 'validation',
      message: '2 problems: args.COUNT: not an int; args.TOKEN: missing',
      field: 'args.COUNT',
      problems: [{ field: 'args.COUNT', message: 'not an int' }, { field: 'args.TOKEN', message: 'missing' }],
    });
  });

  it('serves the dashboard\'s files under /ui without a token, and nothing else there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'grid-ui-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>GRID</title>');
    writeFileSync(join(dir, 'app.js'), 'console.log(1)');
    const ui = await buildHttpApi({} as HttpUseCases, { auth: new Authenticator('tokens', []), log: silentLogger }, { uiDir: dir });
    try {
      expect(ui.dashboard).toBe(true);
      expect(ui.routes.filter((r) => r.includes('/ui'))).toEqual([]);
      const bare = await ui.app.inject({ method: 'GET', url: '/ui' });
      expect([bare.statusCode, bare.headers.location]).toEqual([302, '/ui/']);
      const page = await ui.app.inject({ method: 'GET', url: '/ui/' });
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(page.headers['set-cookie']).toBeUndefined();
      const again = await ui.app.inject({ method: 'GET', url: '/ui/', headers: { 'if-none-match': String(page.headers.etag) } });
      expect(again.statusCode).toBe(304);
      const js = await ui.app.inject({ method: 'GET', url: '/ui/app.js' });
      expect([js.statusCode, js.headers['content-type'], js.body]).toEqual([200, 'text/javascript; charset=utf-8', 'console.log(1)']);
      expect((await ui.app.inject({ method: 'GET', url: '/ui/../package.json' })).statusCode).toBe(404);
      expect((await ui.app.inject({ method: 'GET', url: '/ui/nope.js' })).json().error.kind).toBe('not_found');
    } finally {
      await ui.app.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const unbuilt = await buildHttpApi({} as HttpUseCases, { auth: new Authenticator('tokens', []), log: silentLogger }, { uiDir: join(tmpdir(), 'grid-ui-none') });
    expect((await unbuilt.app.inject({ method: 'GET', url: '/ui/' })).json().error.message).toMatch(/not built: run make build/);
    await unbuilt.app.close();
  });

  it('writes one NDJSON object per line of a log chunk, the chunk\'s sequence as every line\'s offset', () => {
    const chunk = (text: string) => ({ executionId: 'x', executorId: 'E1', executorName: 'web-1', stream: 'stderr', data: Buffer.from(text), seq: 42, atMs: 0 });
    const parse = (out: string) => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parse(chunkLines(chunk('one\ntwo\n')))).toEqual([
      { executor: 'web-1', executor_id: 'E1', stream: 'stderr', line: 'one', offset: 42 },
      { executor: 'web-1', executor_id: 'E1', stream: 'stderr', line: 'two', offset: 42 },
    ]);
    expect(parse(chunkLines(chunk('no newline at the end'))).map((l) => [l.line, l.partial])).toEqual([['no newline at the end', true]]);
    expect(parse(chunkLines(chunk('one\ntw'))).map((l) => [l.line, l.partial])).toEqual([['one', undefined], ['tw', true]]);
    expect(parse(chunkLines(chunk('\n'))).map((l) => [l.line, l.partial])).toEqual([['', undefined]]);
    expect(chunkLines(chunk(''))).toBe('');
  });
});
