// A small GRID fleet for the execution-pipeline e2e tests (test/e2e/pipeline-*.test.ts): real
// nats-server and etcd, one controller, and three executor processes — web-1 and web-2 (group
// web) and db-1 (group db), all offering the host runner — driven with the real grid-cli.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'vitest';
import { startExecutor, stopExecutors, type RunningExecutor } from './executor-process.js';
import {
  childEnv,
  cleanupProcesses,
  programPath,
  runCli,
  startController,
  tempDir,
  TOKENS,
  type RunningController,
  type RunResult,
} from './processes.js';
import { processAlive } from './proc.js';
import { startServers, uniqueName, type TestServers } from './servers.js';

export const EXECUTOR_NAMES = ['web-1', 'web-2', 'db-1'] as const;
export type ExecutorName = (typeof EXECUTOR_NAMES)[number];
const GROUPS: Record<ExecutorName, string[]> = { 'web-1': ['web'], 'web-2': ['web'], 'db-1': ['db'] };

export interface FleetOptions {
  /** Keys merged over every executor's config. */
  executorConfig?: Record<string, unknown>;
  /** Keys merged over one executor's config (after executorConfig). */
  perExecutor?: Partial<Record<ExecutorName, Record<string, unknown>>>;
  /** Keys merged over the controller's config. */
  controllerConfig?: Record<string, unknown>;
}

export interface Fleet {
  servers: TestServers;
  controller: RunningController;
  executors: Record<ExecutorName, RunningExecutor>;
  /** Where job definitions and job side effects go. */
  dir: string;
  /** grid-cli as `role` (default operator). */
  cli(args: string[], as?: keyof typeof TOKENS, timeoutMs?: number): Promise<RunResult>;
  /** Writes the definition (name made unique) and `grid-cli create`s it as admin; returns the name. */
  createJob(def: Record<string, unknown>): Promise<string>;
  /** `execute … --output json` as operator; returns the execution id. */
  execute(job: string, args?: string[]): Promise<string>;
  /** `status ID --output json`, parsed. */
  status(id: string): Promise<StatusJson>;
  /** Polls status until the execution is terminal (default up to 30 s). */
  waitTerminal(id: string, timeoutMs?: number): Promise<StatusJson>;
  stop(): Promise<void>;
}

/** `grid-cli status --output json` (the fields the tests look at). */
export interface StatusJson {
  id: string;
  job: string;
  state: string;
  reason: string;
  target: string;
  args: Record<string, string>;
  tasks: Array<{ key: string; executorId: string; executorName: string; state: string; attempts: number; exitCode?: number; startedAtMs: number; finishedAtMs: number; reason: string }>;
  workers: Record<string, { state: string; exit_code: number | null; attempts: number; reason: string }>;
  [k: string]: unknown;
}

export { expectOneLineError } from './processes.js';

export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

export async function startFleet(o: FleetOptions = {}): Promise<Fleet> {
  const servers = await startServers();
  const dir = tempDir('grid-e2e-pipeline-');
  let controller: RunningController | undefined;
  const stop = async (): Promise<void> => {
    await stopExecutors();
    await cleanupProcesses();
    await servers.stop();
  };
  try {
    controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, config: o.controllerConfig });
    const address = controller.address;
    const started = await Promise.all(
      EXECUTOR_NAMES.map((name) =>
        startExecutor({
          controller: address,
          name,
          groups: GROUPS[name],
          config: { runners: ['host'], ...o.executorConfig, ...o.perExecutor?.[name] },
        }),
      ),
    );
    const executors = Object.fromEntries(started.map((e) => [e.name, e])) as Record<ExecutorName, RunningExecutor>;

    const cli = (args: string[], as: keyof typeof TOKENS = 'operator', timeoutMs?: number) =>
      runCli(args, { address, token: TOKENS[as], timeoutMs });
    const fleet: Fleet = {
      servers,
      controller,
      executors,
      dir,
      cli,
      async createJob(def) {
        const name = uniqueName(String(def.name ?? 'job'));
        const path = join(dir, `${name}.json`);
        writeFileSync(path, JSON.stringify({ ...def, name }, null, 2));
        const r = await cli(['create', path], 'admin');
        expect(r.code, `create ${name}: ${r.stderr}`).toBe(0);
        return name;
      },
      async execute(job, args = []) {
        const r = await cli(['execute', job, ...args, '--output', 'json']);
        expect(r.code, `execute ${job} ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`).toBe(0);
        const res = JSON.parse(r.stdout) as { executionId?: string; execution?: { id: string } };
        const id = res.executionId || res.execution?.id;
        expect(id, r.stdout).toBeTruthy();
        return id!;
      },
      async status(id) {
        const r = await cli(['status', id, '--output', 'json']);
        expect(r.code, `status ${id}: ${r.stderr}`).toBe(0);
        return JSON.parse(r.stdout) as StatusJson;
      },
      async waitTerminal(id, timeoutMs = 30_000) {
        const until = Date.now() + timeoutMs;
        let last: StatusJson | undefined;
        while (Date.now() < until) {
          last = await fleet.status(id);
          if (TERMINAL.has(last.state)) return last;
          await delay(200);
        }
        throw new Error(`execution ${id} not terminal within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
      },
      stop,
    };
    return fleet;
  } catch (err) {
    await stop();
    throw err;
  }
}


/** Exit 0 and nothing on stderr; returns stdout. */
export function expectOk(r: RunResult): string {
  expect(r, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toMatchObject({ code: 0, stderr: '' });
  return r.stdout;
}

/** Polls until none of `pids` is alive; returns the ones still alive after `timeoutMs`. */
export async function waitGone(pids: number[], timeoutMs = 10_000): Promise<number[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter(processAlive);
    if (alive.length === 0 || Date.now() >= until) return alive;
    await delay(100);
  }
}

export { processAlive, rssBytes } from './proc.js';

export interface StreamedLine {
  line: string;
  stream: 'stdout' | 'stderr';
  atMs: number;
}

export interface StreamingRun {
  lines: StreamedLine[];
  /** Exit code and when it exited. */
  exited: Promise<{ code: number; atMs: number }>;
  kill(): void;
}

/**
 * Runs grid-cli and records each output line with the time it arrived (for --follow). The child
 * gets its own process group; kill() ends it.
 */
export function streamCli(address: string, args: string[], token: string = TOKENS.operator): StreamingRun {
  const env = childEnv();
  const child = spawn(process.execPath, [programPath('grid-cli'), '--controller', address, '--token', token, ...args], {
    env,
    cwd: env.HOME,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const lines: StreamedLine[] = [];
  const reader = (stream: 'stdout' | 'stderr') => {
    let buf = '';
    child[stream]!.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push({ line: buf.slice(0, nl), stream, atMs: Date.now() });
        buf = buf.slice(nl + 1);
      }
    });
    child[stream]!.on('end', () => {
      if (buf) lines.push({ line: buf, stream, atMs: Date.now() });
    });
  };
  reader('stdout');
  reader('stderr');
  const exited = new Promise<{ code: number; atMs: number }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), atMs: Date.now() })),
  );
  return {
    lines,
    exited,
    kill: () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    },
  };
}
