// Real executor processes for integration tests: `node dist/cmd/executor.js register` and
// `… start`, each with its own config file and state file in a temp dir. Built on processes.ts,
// so every child and temp dir is tracked there and removed by cleanupProcesses() (and on exit);
// stopExecutors() additionally stops the executors started here, gracefully first.
//
// The programs must be built first: `npx tsc -p tsconfig.json`.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GridClient } from '../../src/client/client.js';
import { ExecutorState as ExecutorStateEnum } from '../../src/gen/grid/v1/types.js';
import { REGISTRATION_TOKEN, runCli, runProgram, startProgram, tempDir, TOKENS, type RunningProgram, type RunResult } from './processes.js';
import { testClientTls } from './grpc-tls.js';

export interface ExecutorOptions {
  /** The controller's host:port. */
  controller: string;
  name: string;
  groups?: string[];
  /** Default REGISTRATION_TOKEN (the one the test controllers accept). */
  registrationToken?: string;
  /** Default 1 s. */
  pingIntervalSeconds?: number;
  /** Keys merged over the written config file. */
  config?: Record<string, unknown>;
  /** Put the config (and so the state file) in this dir instead of a fresh temp dir. */
  dir?: string;
  /** Pass --replace to register. */
  replace?: boolean;
  env?: NodeJS.ProcessEnv;
  /** How long to wait for `heartbeat accepted state=ACTIVE` (default 30 s). */
  readyTimeoutMs?: number;
}

export interface ExecutorFiles {
  dir: string;
  configFile: string;
  stateFile: string;
}

/** What `executor register` left in the state file. */
export interface ExecutorState {
  executor_id: string;
  executor_secret: string;
  name: string;
  [k: string]: unknown;
}

export interface RunningExecutor extends ExecutorFiles {
  name: string;
  /** The executor id from the state file (as of the last register). */
  id: string;
  /** The pid of the current `executor start`. */
  readonly pid: number;
  /** Every line of every run so far (register and each start), in order. */
  logs(): string;
  /** Resolves with the current `executor start`'s exit code. */
  readonly exited: Promise<number>;
  /** Sends `signal` (default SIGTERM) and waits for the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
  /** SIGKILL; resolves with 137. */
  kill9(): Promise<number>;
  /** `executor start` again (after stop or kill9) with the same config and state file; waits for ACTIVE. */
  restart(): Promise<void>;
}

const READY = /heartbeat accepted state=ACTIVE|controller reachable again state=ACTIVE/;

/** Writes an executor config JSON into `dir` (default a fresh temp dir); the state file sits next to it. */
export function writeExecutorConfig(o: ExecutorOptions): ExecutorFiles {
  const dir = o.dir ?? tempDir('grid-it-executor-');
  const config = {
    controller: o.controller,
    registration_token: o.registrationToken ?? REGISTRATION_TOKEN,
    name: o.name,
    groups: o.groups ?? [],
    ping_interval_seconds: o.pingIntervalSeconds ?? 1,
    work_dir: join(dir, 'work'),
    shutdown_grace_seconds: 5,
    ...o.config,
  };
  const configFile = join(dir, 'executor.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2) + '\n');
  return { dir, configFile, stateFile: join(dir, 'executor-state.json') };
}

export function readExecutorState(stateFile: string): ExecutorState {
  return JSON.parse(readFileSync(stateFile, 'utf8')) as ExecutorState;
}

/** `executor register --config F [--replace]`, to completion. */
export function registerExecutor(configFile: string, o: { replace?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return runProgram('executor', ['register', '--config', configFile, ...(o.replace ? ['--replace'] : [])], { env: o.env });
}

/** `executor start --config F`, to completion (for starts that are expected to be refused). */
export function runExecutorStart(configFile: string, o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return runProgram('executor', ['start', '--config', configFile], { env: o.env, timeoutMs: o.timeoutMs });
}

const running = new Set<RunningExecutor>();

/**
 * Writes a config, registers (failing with the output if register does not exit 0), starts
 * `executor start` and waits until its first heartbeat was accepted as ACTIVE.
 */
export async function startExecutor(o: ExecutorOptions): Promise<RunningExecutor> {
  const files = writeExecutorConfig(o);
  // Output of every run, in order: register's, then each start's (read live, so still growing).
  const runs: Array<() => string> = [];
  const reg = await registerExecutor(files.configFile, { replace: o.replace, env: o.env });
  runs.push(() => reg.stdout + reg.stderr);
  if (reg.code !== 0) {
    throw new Error(`executor register (${o.name}) exited with ${reg.code}:\n${reg.stdout}${reg.stderr}`);
  }
  const id = readExecutorState(files.stateFile).executor_id;

  let current!: RunningProgram;
  const launch = async (): Promise<void> => {
    try {
      current = await startProgram('executor', ['start', '--config', files.configFile], {
        env: o.env,
        ready: READY,
        readyTimeoutMs: o.readyTimeoutMs,
      });
    } catch (err) {
      const message = (err as Error).message;
      runs.push(() => message);
      throw err;
    }
    runs.push(current.logs);
  };

  await launch();
  const ex: RunningExecutor = {
    ...files,
    name: o.name,
    id,
    get pid() {
      return current.pid;
    },
    get exited() {
      return current.exited;
    },
    logs: () => runs.map((r) => r()).join(''),
    stop: async (signal = 'SIGTERM', timeoutMs?: number) => {
      try {
        return await current.stop(signal, timeoutMs);
      } finally {
        running.delete(ex);
      }
    },
    kill9: async () => {
      try {
        return await current.kill9();
      } finally {
        running.delete(ex);
      }
    },
    restart: async () => {
      const gone = await Promise.race([current.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 50))]);
      if (!gone) throw new Error(`executor ${o.name} is still running (pid ${current.pid}): stop or kill9 it before restart()`);
      await launch();
      running.add(ex);
    },
  };
  running.add(ex);
  return ex;
}

/** SIGTERM to every executor started here and still running (SIGKILL after 10 s). */
export async function stopExecutors(): Promise<void> {
  await Promise.allSettled([...running].map((e) => e.stop('SIGTERM', 10_000)));
  running.clear();
}

// ---- watching the registry ----

/** One executor as `grid-cli executors list --output json` shows it (the fields tests look at). */
export interface ExecutorRow {
  name: string;
  id: string;
  groups: string[];
  state: string;
  [k: string]: unknown;
}

/** `grid-cli executors list --output json` as the admin; throws with the output unless it exits 0. */
export async function listExecutorsCli(address: string, transcript?: string[]): Promise<ExecutorRow[]> {
  const r = await runCli(['executors', 'list', '--output', 'json'], { address, token: TOKENS.admin });
  transcript?.push(r.stdout, r.stderr);
  if (r.code !== 0) throw new Error(`grid-cli executors list exited with ${r.code}:\n${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as ExecutorRow[];
}

export interface Observation {
  /** ms since the poller started. */
  atMs: number;
  /** Wall-clock time of the answer. */
  wallMs: number;
  rows?: ExecutorRow[];
  /** Why the call failed (e.g. the controller is restarting). */
  error?: string;
}

export interface ListPoller {
  observations: Observation[];
  /** Resolves with the first observation matching `pred` (waiting up to `timeoutMs`). */
  waitFor(pred: (rows: ExecutorRow[]) => boolean, timeoutMs: number): Promise<Observation>;
  stop(): Promise<Observation[]>;
}

/**
 * Calls ListExecutors in-process (the same gRPC call grid-cli makes, without a process start per
 * call) every `everyMs`, back to back, and keeps every answer.
 */
export function pollExecutors(address: string, everyMs = 100): ListPoller {
  const client = new GridClient({ address, token: TOKENS.admin, timeoutMs: 2_000, tls: testClientTls() });
  const observations: Observation[] = [];
  const t0 = Date.now();
  let stopped = false;
  const waiters: Array<{ pred: (rows: ExecutorRow[]) => boolean; resolve: (o: Observation) => void }> = [];
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      let o: Observation;
      try {
        const { executors } = await client.ctl.listExecutors();
        const rows = executors.map((e) => ({ ...e, state: (ExecutorStateEnum[e.state] ?? 'UNKNOWN').replace('EXECUTOR_STATE_', '') }));
        o = { atMs: Date.now() - t0, wallMs: Date.now(), rows };
      } catch (err) {
        o = { atMs: Date.now() - t0, wallMs: Date.now(), error: (err as Error).message };
      }
      observations.push(o);
      for (const w of [...waiters]) {
        if (o.rows && w.pred(o.rows)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(o);
        }
      }
      const wait = everyMs - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    observations,
    waitFor: (pred, timeoutMs) =>
      new Promise<Observation>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.findIndex((w) => w.resolve === done), 1);
          const last = observations[observations.length - 1];
          reject(new Error(`no matching executors list within ${timeoutMs} ms; last: ${JSON.stringify(last?.rows?.map(brief) ?? last?.error)}`));
        }, timeoutMs);
        const done = (o: Observation): void => {
          clearTimeout(timer);
          resolve(o);
        };
        waiters.push({ pred, resolve: done });
      }),
    stop: async () => {
      stopped = true;
      await loop;
      client.close();
      return observations;
    },
  };
}

/** name, id, groups and state: what must not change across a controller restart. */
export function brief(r: ExecutorRow): { name: string; id: string; groups: string[]; state: string } {
  return { name: r.name, id: r.id, groups: [...r.groups], state: r.state };
}

export function stateOf(rows: ExecutorRow[], name: string): string | undefined {
  return rows.find((r) => r.name === name)?.state;
}
