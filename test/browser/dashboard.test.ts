// The dashboard in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
// real controller, nats-server, etcd and two host executors: sign in with a token, run a job
// from its typed form (an enum select, a secret field, a bad value refused beside its field),
// watch rows change without a reload and without the page reading them again, a log line
// appear, the log pane capped with its marker and the whole log downloaded, a long job
// cancelled, and an executor go EXPIRED when its process is killed. Screenshots are saved
// under test-results/screenshots/ (git-ignored).
//
// Needs the built programs and dashboard: `make build`.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page, type Request } from 'playwright-core';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCa } from '../harness/grpc-tls.js';
import { startExecutor, stopExecutors, type RunningExecutor } from '../harness/executor-process.js';
import { cleanupProcesses, REPO_ROOT, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const PING_DEADLINE_S = 3;
const SHOTS = join(REPO_ROOT, 'test-results', 'screenshots');

let servers: TestServers;
let controller: RunningController;
let base: string;
let dispatcher: Agent;
let browser: Browser;
let page: Page;
let web: RunningExecutor;
let doomed: RunningExecutor;
const jobs = { greet: uniqueName('greet'), slow: uniqueName('slow'), chatty: uniqueName('chatty'), halves: uniqueName('halves') };

/** Debian's chromium, found on PATH; playwright-core never downloads a browser here. */
function chromiumPath(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('chromium is not installed: `make deps` installs it (Debian package chromium)');
  }
}

async function api(method: string, path: string, body?: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${TOKENS.admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    dispatcher,
  } as RequestInit);
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function shot(name: string): Promise<void> {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

/** The state badge in a table row, e.g. row('[data-worker="x"]'). */
const stateIn = (row: string) => page.locator(`${row} [data-field="state"] .badge`);

async function waitState(row: string, state: string, timeout = 20_000): Promise<void> {
  await page.locator(`${row} [data-field="state"] .badge[data-state="${state}"]`).waitFor({ timeout });
}

/** Marks the page; the mark is gone if it was reloaded. */
async function markPage(): Promise<void> {
  await page.evaluate(() => ((globalThis as unknown as { gridMark: boolean }).gridMark = true));
}
async function pageWasNotReloaded(): Promise<boolean> {
  return page.evaluate(() => (globalThis as unknown as { gridMark?: boolean }).gridMark === true);
}

/** The API calls the page makes from now on (method and path). */
function recordCalls(): { calls: string[]; stop: () => void } {
  const calls: string[] = [];
  const on = (r: Request) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/v1/')) calls.push(`${r.method()} ${u.pathname}${u.search}`);
  };
  page.on('request', on);
  return { calls, stop: () => page.off('request', on) };
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  servers = await startServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: { executor_ping_deadline_seconds: PING_DEADLINE_S },
  });
  const ready = /http ready address=(\S+) tls=on dashboard=(\S+)/.exec(controller.logs());
  expect(ready, controller.logs()).not.toBeNull();
  base = `https://${ready![1]}`;
  expect(ready![2]).toBe(`${base}/ui/`);
  dispatcher = new Agent({ connect: { ca: testCa().pem } });
  [web, doomed] = await Promise.all([
    startExecutor({ controller: controller.address, name: uniqueName('web'), groups: ['web'], config: { runners: ['host'] } }),
    startExecutor({ controller: controller.address, name: uniqueName('doomed'), groups: ['edge'], config: { runners: ['host'] } }),
  ]);
  const definitions = [
    {
      name: jobs.greet,
      description: 'greets in a colour',
      shell: 'echo "hello $NAME in $COLOR x$COUNT"; sleep 1.5; if [ -n "$TOKEN" ]; then echo token present; fi',
      target: 'group:web',
      env_vars: {
        args: [
          { name: 'NAME', description: 'who to greet', default: 'world' },
          { name: 'COLOR', description: 'which colour', type: 'enum', values: ['red', 'green', 'blue'], required: true },
          { name: 'COUNT', description: 'how many times', type: 'int', default: '1' },
        ],
        secrets: [{ name: 'TOKEN', description: 'an API token', required: true }],
      },
    },
    { name: jobs.slow, description: 'runs a minute', shell: 'echo started; sleep 60; echo finished', target: 'group:web' },
    { name: jobs.chatty, description: 'prints 5000 lines', shell: 'seq 1 5000', target: 'group:web' },
    { name: jobs.halves, description: 'prints a line in two writes', shell: "printf 'first half'; sleep 3; printf ' and the rest\\nlast\\n'", target: 'group:web' },
  ];
  for (const d of definitions) await api('POST', '/v1/jobs', d);

  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true });
  // The controller's certificate is from the test CA, which this browser does not know.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('pageerror', (err) => console.log(`page error: ${err.message}`));
  page.on('console', (m) => m.type() === 'error' && console.log(`page console: ${m.text()}`));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await dispatcher?.close();
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

describe('dashboard', () => {
  it('serves the page without a token, hidden from the API document; the data needs one', async () => {
    const res = await fetch(`${base}/ui/`, { dispatcher } as RequestInit);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('set-cookie')).toBeNull();
    const doc = await api('GET', '/v1/openapi.json');
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/ui'))).toEqual([]);
    expect((await fetch(`${base}/v1/executors`, { dispatcher } as RequestInit)).status).toBe(401);
  });

  it('asks for a token, refuses a wrong one, and shows the fleet live', async () => {
    await page.goto(`${base}/ui/`);
    await page.fill('#token', 'not-a-token-of-this-grid');
    await page.click('#login button[type=submit]');
    await page.locator('#login .error').filter({ hasText: 'not accepted' }).waitFor();
    await page.fill('#token', TOKENS.operator);
    await page.click('#login button[type=submit]');
    await page.locator('#connection.live').waitFor();
    for (const e of [web, doomed]) {
      await waitState(`[data-executor="${e.name}"]`, 'ACTIVE');
      await expect.poll(() => page.textContent(`[data-executor="${e.name}"] [data-field="heartbeat"]`)).toMatch(/ago$/);
    }
    expect(await page.textContent(`[data-executor="${web.name}"]`)).toContain('web');
    expect(await page.textContent(`[data-executor="${web.name}"]`)).toContain('host');
    // The token is kept for this tab only, never in a cookie.
    expect(await page.context().cookies()).toEqual([]);
    await shot('fleet');
  });

  it('runs a job from its typed form: a bad value is refused beside its field, then the row goes SUCCEEDED live with its log', async () => {
    await page.click('a[href="#/jobs"]');
    await page.click(`[data-job="${jobs.greet}"] a.button`);
    await page.locator('#run-form').waitFor();
    // Typed from the definition: the enum is a select of its values, the secret a password field.
    expect(await page.$$eval('#arg-COLOR option', (options) => options.map((o) => (o as unknown as { value: string }).value))).toEqual(['', 'red', 'green', 'blue']);
    expect(await page.getAttribute('#arg-TOKEN', 'type')).toBe('password');
    expect(await page.getAttribute('#arg-NAME', 'placeholder')).toBe('default: world');

    await page.fill('#arg-NAME', 'grid');
    await page.selectOption('#arg-COLOR', 'green');
    await page.fill('#arg-COUNT', 'ten');
    await page.click('#run');
    await page.locator('[data-field="COUNT"] .field-error').waitFor();
    expect(await page.textContent('[data-field="COUNT"] .field-error')).toContain('"ten" is not an int');
    expect(await page.textContent('[data-field="TOKEN"] .field-error')).toContain('requires this secret');
    expect(await page.locator('[data-field="NAME"] .field-error').count()).toBe(0);
    await shot('run-form-errors');

    await page.fill('#arg-COUNT', '2');
    await page.fill('#arg-TOKEN', 'hunter2');
    await markPage();
    // The execution page reads the execution once; from then on only the events stream changes it.
    const firstRead = page.waitForResponse((r) => /\/v1\/executions\/[0-9A-Z]{26}$/.test(new URL(r.url()).pathname));
    await page.click('#run');
    await page.waitForURL(/#\/executions\/[0-9A-Z]{26}$/);
    const id = /#\/executions\/(\w+)$/.exec(page.url())![1]!;
    expect(new URL((await firstRead).url()).pathname).toBe(`/v1/executions/${id}`);
    const row = `[data-worker="${web.name}"]`;
    const calls = recordCalls();
    await page.locator('#log .line').filter({ hasText: 'hello grid in green x2' }).waitFor({ timeout: 20_000 });
    // The line is there while the task still runs (it sleeps after printing it).
    expect(await stateIn(row).getAttribute('data-state')).toMatch(/PENDING|RUNNING/);
    await waitState(row, 'SUCCEEDED');
    await waitState('#execution', 'SUCCEEDED');
    calls.stop();
    expect(await pageWasNotReloaded()).toBe(true);
    // Changes came from the events stream: the execution was not read again meanwhile.
    expect(calls.calls.filter((c) => c.startsWith(`GET /v1/executions/${id}`) && !c.includes('/logs'))).toEqual([]);
    expect(await page.textContent('.facts')).toContain('TOKEN=(secret)');
    expect(await page.textContent('#log')).toContain('token present');
    expect(await page.textContent('#log')).not.toContain('hunter2');
    await shot('execution-succeeded');
  });

  it('lists executions with per-state counts, and a new one comes in and goes SUCCEEDED without a reload', async () => {
    await page.goto(`${base}/ui/#/executions?job=${jobs.greet}`);
    await page.locator('#executions tbody tr[data-execution]').first().waitFor();
    const succeeded = page.locator('[data-count-state="SUCCEEDED"] .count');
    await expect.poll(() => succeeded.textContent()).toBe('1');
    await markPage();
    const calls = recordCalls();
    const started = await api('POST', `/v1/jobs/${jobs.greet}/executions`, { args: { COLOR: 'red', TOKEN: 't' } });
    const row = `[data-execution="${started.executionId}"]`;
    await page.locator(row).waitFor({ timeout: 10_000 });
    await waitState(row, 'SUCCEEDED');
    await expect.poll(() => succeeded.textContent(), { timeout: 10_000 }).toBe('2');
    calls.stop();
    expect(await pageWasNotReloaded()).toBe(true);
    // The page was not read again: the row came from the events stream (the counts are re-read after changes).
    expect(calls.calls.filter((c) => c.startsWith('GET /v1/executions?'))).toEqual([]);
    expect(await page.textContent(`${row} td:nth-child(2)`)).toBe(jobs.greet);
    await shot('executions');

    // Pages are read from the controller: one execution a page here, newest first.
    await page.goto(`${base}/ui/#/executions?job=${jobs.greet}&limit=1`);
    const rows = page.locator('#executions tbody tr[data-execution]');
    await expect.poll(() => rows.count()).toBe(1);
    await page.locator(row).waitFor();
    await page.click('#older');
    await page.locator(`#executions tbody tr[data-execution]:not(${row})`).waitFor();
    await expect.poll(() => rows.count()).toBe(1);
    expect(await page.locator('#older').isDisabled()).toBe(true);
    await page.click('#newer');
    await page.locator(row).waitFor();
    // The state filter reads its own pages.
    await page.click('[data-count-state="FAILED"]');
    await page.locator('#executions .empty').waitFor();
  });

  it('cancels a long job', async () => {
    const started = await api('POST', `/v1/jobs/${jobs.slow}/executions`, {});
    await page.goto(`${base}/ui/#/executions/${started.executionId}`);
    const row = `[data-worker="${web.name}"]`;
    await waitState(row, 'RUNNING');
    await page.locator('#log .line').filter({ hasText: 'started' }).waitFor();
    await page.goto(`${base}/ui/#/fleet`);
    await expect.poll(() => page.textContent(`[data-executor="${web.name}"] [data-field="running"]`)).toBe('1');
    await page.goto(`${base}/ui/#/executions/${started.executionId}`);
    await page.click('#cancel');
    await waitState('#execution', 'CANCELLED');
    await waitState(row, 'CANCELLED', 30_000);
    expect(await page.locator('#cancel').count()).toBe(0);
    expect(await page.textContent('.facts')).toContain('cancelled by operator');
    await shot('execution-cancelled');
  });

  it('caps the log pane at its head and tail, and downloads the whole log', async () => {
    const started = await api('POST', `/v1/jobs/${jobs.chatty}/executions`, {});
    await page.goto(`${base}/ui/#/executions/${started.executionId}`);
    await waitState('#execution', 'SUCCEEDED');
    const marker = page.locator('#log-marker');
    await marker.waitFor();
    expect(await marker.textContent()).toBe('[grid: 3000 lines not shown; kept the first 1000 lines and the last 1000 lines (Download has them all)]');
    const lines = await page.$$eval('#log .line:not(.marker)', (els) => els.map((e) => e.textContent));
    expect(lines).toHaveLength(2000);
    expect([lines[0], lines[999], lines[1000], lines[1999]]).toEqual(['1', '1000', '4001', '5000']);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(download.suggestedFilename()).toBe(`${jobs.chatty}-${started.executionId}.log`);
    const text = readFileSync((await download.path())!, 'utf8');
    expect(text.split('\n').slice(0, -1)).toEqual(Array.from({ length: 5000 }, (_, i) => String(i + 1)));
    await shot('log-capped');
  });

  it('shows a line written in two parts, published apart, as one line', async () => {
    const started = await api('POST', `/v1/jobs/${jobs.halves}/executions`, {});
    await page.goto(`${base}/ui/#/executions/${started.executionId}`);
    await page.locator('#log .line', { hasText: 'first half' }).waitFor();
    // Followed live: the rest is written (and published) only after this.
    expect(await stateIn('#execution').getAttribute('data-state')).toBe('RUNNING');
    await waitState('#execution', 'SUCCEEDED');
    await page.locator('#log .line', { hasText: 'last' }).waitFor();
    expect(await page.$$eval('#log .line', (els) => els.map((e) => e.textContent))).toEqual(['first half and the rest', 'last']);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(readFileSync((await download.path())!, 'utf8')).toBe('first half and the rest\nlast\n');
  });

  it('shows an executor EXPIRED when its process is killed', async () => {
    await page.goto(`${base}/ui/#/fleet`);
    await waitState(`[data-executor="${doomed.name}"]`, 'ACTIVE');
    await markPage();
    await doomed.kill9();
    await waitState(`[data-executor="${doomed.name}"]`, 'EXPIRED', (PING_DEADLINE_S + 10) * 1000);
    expect(await pageWasNotReloaded()).toBe(true);
    expect(await stateIn(`[data-executor="${web.name}"]`).getAttribute('data-state')).toBe('ACTIVE');
    await shot('fleet-expired');
  });
});
