// getlogs --tail / --since / --timestamps end to end: a real controller (on real NATS and etcd)
// and a real executor run a job that prints numbered lines; grid-cli and the HTTP door's logs
// route read parts of its log back, the controller picking the lines.
//
// Needs the built programs: `make build`.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCa } from '../harness/grpc-tls.js';
import { startExecutor, stopExecutors } from '../harness/executor-process.js';
import { streamCli } from '../harness/pipeline-fleet.js';
import { cleanupProcesses, expectOneLineError, runCli, startController, tempDir, TOKENS, type RunningController, type RunResult } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const LINES = 20;
const numbered = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);

let servers: TestServers;
let controller: RunningController;
let dir: string;
let httpBase: string;
let dispatcher: Agent;
/** An ended execution of the numbered job, and when it was created and finished. */
let done: { id: string; createdAtMs: number; finishedAtMs: number };

function cli(args: string[]): Promise<RunResult> {
  return runCli(args, { address: controller.address, token: TOKENS.operator });
}

function ok(r: RunResult): string[] {
  expect(r, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toMatchObject({ code: 0, stderr: '' });
  return r.stdout === '' ? [] : r.stdout.replace(/\n$/, '').split('\n');
}

async function createJob(def: Record<string, unknown>): Promise<string> {
  const name = uniqueName(String(def.name));
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ ...def, name }));
  const r = await runCli(['create', path], { address: controller.address, token: TOKENS.admin });
  expect(r.code, r.stderr).toBe(0);
  return name;
}

async function execute(job: string): Promise<string> {
  const r = await cli(['execute', job, '--output', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { executionId: string }).executionId;
}

async function statusOf(id: string): Promise<{ state: string; createdAtMs: number; tasks: Array<{ finishedAtMs: number }> }> {
  return JSON.parse(ok(await cli(['status', id, '--output', 'json'])).join('\n'));
}

/** The HTTP door's logs route: the status and, on 200, the `line` of each NDJSON object. */
async function httpLogs(id: string, query: string): Promise<{ status: number; lines: string[]; body: string }> {
  const res = await fetch(`${httpBase}/v1/executions/${id}/logs?${query}`, { headers: { authorization: `Bearer ${TOKENS.operator}` }, dispatcher } as RequestInit);
  const body = await res.text();
  const lines = res.status === 200 ? body.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { line: string }).line) : [];
  return { status: res.status, lines, body };
}

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  httpBase = `https://${/http ready address=(\S+) tls=on/.exec(controller.logs())![1]!}`;
  dispatcher = new Agent({ connect: { ca: testCa().pem } });
  dir = tempDir('grid-e2e-getlogs-');
  await startExecutor({ controller: controller.address, name: uniqueName('logs-exec'), config: { runners: ['host'] } });
  const job = await createJob({ name: 'numbered', shell: `for i in $(seq 1 ${LINES}); do echo "line $i"; done` });
  const id = await execute(job);
  for (;;) {
    const s = await statusOf(id);
    if (['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(s.state)) {
      expect(s.state).toBe('SUCCEEDED');
      done = { id, createdAtMs: s.createdAtMs, finishedAtMs: Math.max(...s.tasks.map((t) => t.finishedAtMs)) };
      break;
    }
    await delay(200);
  }
}, 120_000);

afterAll(async () => {
  await dispatcher?.close();
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

describe('getlogs --tail', () => {
  it('gives the last N lines, and all of them when N is more than there are', async () => {
    expect(ok(await cli(['getlogs', done.id, '--tail', '3']))).toEqual(numbered(LINES - 2, LINES));
    expect(ok(await cli(['getlogs', done.id, '--tail', '0']))).toEqual([]);
    expect(ok(await cli(['getlogs', done.id, '--tail', '1000']))).toEqual(numbered(1, LINES));
    expect(ok(await cli(['getlogs', done.id]))).toEqual(numbered(1, LINES));
  });

  it('with --follow, starts with the last N lines and then follows the new ones', async () => {
    const marker = join(dir, uniqueName('go'));
    const job = await createJob({ name: 'waits', shell: `for i in 1 2 3 4 5; do echo "line $i"; done; while [ ! -f ${marker} ]; do sleep 0.1; done; echo "line 6"` });
    const id = await execute(job);
    const run = streamCli(controller.address, ['getlogs', id, '--follow', '--tail', '2']);
    try {
      while (!run.lines.some((l) => l.line === 'line 5')) {
        await Promise.race([run.exited.then(() => { throw new Error(`getlogs ended early: ${JSON.stringify(run.lines)}`); }), delay(100)]);
      }
      writeFileSync(marker, '');
      const { code } = await run.exited;
      expect(run.lines.map((l) => l.line)).toEqual(['line 4', 'line 5', 'line 6']);
      expect(code).toBe(0);
    } finally {
      run.kill();
    }
  });
});

describe('getlogs --since', () => {
  it('gives none for a time after the run and all for one before it (RFC 3339 or how long ago)', async () => {
    expect(ok(await cli(['getlogs', done.id, '--since', new Date(done.finishedAtMs + 1).toISOString()]))).toEqual([]);
    expect(ok(await cli(['getlogs', done.id, '--since', new Date(done.createdAtMs - 1000).toISOString()]))).toEqual(numbered(1, LINES));
    expect(ok(await cli(['getlogs', done.id, '--since', '1h']))).toEqual(numbered(1, LINES));
    expect(ok(await cli(['getlogs', done.id, '--since', '1h', '--tail', '2']))).toEqual(numbered(LINES - 1, LINES));
  });
});

describe('getlogs --timestamps', () => {
  it('starts every line with the RFC 3339 UTC time, in milliseconds, it was written at', async () => {
    const lines = ok(await cli(['getlogs', done.id, '--timestamps']));
    expect(lines).toHaveLength(LINES);
    lines.forEach((l, i) => {
      const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (.*)$/.exec(l);
      expect(m, l).not.toBeNull();
      const at = Date.parse(m![1]!);
      expect(at).toBeGreaterThanOrEqual(done.createdAtMs - 1000);
      expect(at).toBeLessThanOrEqual(done.finishedAtMs + 1000);
      expect(m![2]).toBe(`line ${i + 1}`);
    });
  });

  it('adds a time to each JSON line, with --tail', async () => {
    const objects = ok(await cli(['getlogs', done.id, '--timestamps', '--tail', '2', '--output', 'json'])).map((l) => JSON.parse(l) as { time: string; line: string });
    expect(objects.map((o) => o.line)).toEqual(numbered(LINES - 1, LINES));
    for (const o of objects) expect(new Date(o.time).toISOString()).toBe(o.time);
  });
});

describe('getlogs: bad values', () => {
  it('are usage errors naming the flag, the value and what is valid', async () => {
    expect(expectOneLineError(await cli(['getlogs', done.id, '--tail', 'x']), 2)).toContain('--tail: "x" must be a whole number ≥ 0');
    expect(expectOneLineError(await cli(['getlogs', done.id, '--tail', '-3']), 2)).toContain('--tail: "-3" must be a whole number ≥ 0');
    expect(expectOneLineError(await cli(['getlogs', done.id, '--since', 'yesterday']), 2)).toContain(
      '--since: "yesterday" is not a duration (10m, 2h, 1h30m or seconds) or an RFC 3339 time',
    );
  });
});

describe('the HTTP door: GET /v1/executions/:id/logs?tail=&since=', () => {
  it('applies the same selection as grid-cli, and refuses bad values with 400', async () => {
    expect(await httpLogs(done.id, 'tail=3')).toMatchObject({ status: 200, lines: numbered(LINES - 2, LINES) });
    expect(await httpLogs(done.id, `since=${encodeURIComponent(new Date(done.finishedAtMs + 1).toISOString())}`)).toMatchObject({ status: 200, lines: [] });
    expect(await httpLogs(done.id, 'since=1h&tail=1')).toMatchObject({ status: 200, lines: numbered(LINES, LINES) });
    const badTail = await httpLogs(done.id, 'tail=-1');
    expect(badTail.status, badTail.body).toBe(400);
    expect(badTail.body).toContain('tail');
    const badSince = await httpLogs(done.id, 'since=yesterday');
    expect(badSince.status, badSince.body).toBe(400);
    expect(badSince.body).toContain('since: \\"yesterday\\" is not a duration');
  });
});
