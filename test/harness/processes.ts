// The real GRID programs for end-to-end tests: `node dist/cmd/<program>.js`, run as child
// processes with all their output kept in memory. Long-running ones (startController, and later
// startExecutor) are started with startProgram and wait for their "ready" log line; one-shot ones
// (runCli) with runProgram, which kills them after a timeout. Every child and temp dir is tracked
// and removed even when the test run is aborted (SIGKILL on process exit and on SIGINT/SIGTERM).
//
// The programs must be built first: `npx tsc -p tsconfig.json` (make test does it).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { atExit } from './exit-hook.js';
import { fileURLToPath } from 'node:url';
import { natsAuthDirOf, uniqueName } from './servers.js';
import { controllerTlsConfig, testCa } from './grpc-tls.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The built entry point of a program: `dist/cmd/<name>.js`. */
export function programPath(name: string): string {
  const path = join(REPO_ROOT, 'dist', 'cmd', `${name}.js`);
  if (!existsSync(path)) throw new Error(`${path} is missing: build first with "npx tsc -p tsconfig.json"`);
  return path;
}

/** A temp dir removed by cleanupProcesses() (and on process exit). */
export function tempDir(prefix = 'grid-e2e-'): string {
  atExit(killLeftovers);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  leftovers.dirs.add(dir);
  return dir;
}

/**
 * The environment for a child: ours without any GRID_* variable, with HOME and XDG_CONFIG_HOME
 * pointing at an empty temp dir (so no user's client config is picked up), plus `extra`.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GRID_')) env[k] = v;
  // Tests read grid-cli's tables as plain text: a FORCE_COLOR of the shell would colour them.
  delete env.FORCE_COLOR;
  isolatedHome ??= tempDir('grid-e2e-home-');
  env.HOME = isolatedHome;
  env.XDG_CONFIG_HOME = join(isolatedHome, '.config');
  // grid-cli and executors verify the test controllers with the test CA (GRID_CA_FILE).
  env.GRID_CA_FILE = testCa().certFile;
  // Controllers serve HTTP on a free port (the default 7080 would be shared by every test's).
  env.GRID_HTTP_ADDRESS = '127.0.0.1:0';
  return { ...env, ...extra };
}
let isolatedHome: string | undefined;

// ---- long-running programs ----

export interface StartOptions {
  /** Extra environment (on top of childEnv()). */
  env?: NodeJS.ProcessEnv;
  /** Working directory; default: the isolated HOME of childEnv(), an empty temp dir. */
  cwd?: string;
  /** The stderr/stdout line that says the program is up; its first group is returned as `ready[1]`. */
  ready: RegExp;
  /** How long to wait for `ready` (default 30 s). */
  readyTimeoutMs?: number;
}

export interface RunningProgram {
  pid: number;
  /** The match of the ready line. */
  ready: RegExpMatchArray;
  /** Everything written so far on stdout and stderr, interleaved in arrival order. */
  logs(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (128 + signal number when killed by a signal). */
  readonly exited: Promise<number>;
  /** Sends `signal` to the program and waits for it to exit; SIGKILLs it after `timeoutMs` and throws. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
  /** SIGKILL to the program and anything it started; resolves when it is gone. */
  kill9(): Promise<number>;
}

/** Starts `node dist/cmd/<program>.js args…` and waits for its ready line. */
export async function startProgram(program: string, args: string[], opts: StartOptions): Promise<RunningProgram> {
  const child = spawnTracked(program, args, { env: opts.env, cwd: opts.cwd });
  const out = collect(child);
  const exited = exitCode(child);
  const label = `${program} ${args.join(' ')}`;

  const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const check = (): boolean => {
      const m = out.all().match(opts.ready);
      if (!m) return false;
      done();
      resolve(m);
      return true;
    };
    const onData = (): void => void check();
    const timer = setTimeout(() => {
      done();
      killGroup(child, 'SIGKILL');
      reject(new Error(`${label}: no line matching ${opts.ready} within ${opts.readyTimeoutMs ?? 30_000} ms; output:\n${out.all()}`));
    }, opts.readyTimeoutMs ?? 30_000);
    const done = (): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onData);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      if (check()) return;
      done();
      reject(new Error(`${label}: exited with ${code} before it was ready; output:\n${out.all()}`));
    });
  });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        killGroup(child, 'SIGKILL');
        reject(new Error(`${label}: still running ${timeoutMs} ms after ${signal}; killed it. Output:\n${out.all()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    pid: child.pid!,
    ready,
    logs: out.all,
    stdout: out.stdout,
    stderr: out.stderr,
    exited,
    stop,
    kill9: () => {
      killGroup(child, 'SIGKILL');
      return exited;
    },
  };
}

// ---- one-shot programs ----

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Exit code `code`, nothing on stdout, and exactly one non-empty line on stderr; returns it. */
export function expectOneLineError(r: RunResult, code: number): string {
  const context = `exit ${r.code}\nstdout: ${JSON.stringify(r.stdout)}\nstderr: ${JSON.stringify(r.stderr)}`;
  expect(r.code, context).toBe(code);
  expect(r.stdout, context).toBe('');
  expect(r.stderr.endsWith('\n'), context).toBe(true);
  const lines = r.stderr.slice(0, -1).split('\n');
  expect(lines, context).toHaveLength(1);
  expect(lines[0]!.trim(), context).not.toBe('');
  return lines[0]!;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Working directory; default: the isolated HOME of childEnv(), an empty temp dir. */
  cwd?: string;
  /** Kill the program and fail after this long (default 20 s). */
  timeoutMs?: number;
  /** Written to its stdin, which is then closed; without it, stdin is /dev/null. */
  input?: string;
}

/** Runs `node dist/cmd/<program>.js args…` to completion. */
export async function runProgram(program: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = spawnTracked(program, args, { env: opts.env, cwd: opts.cwd, stdin: opts.input !== undefined });
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  const out = collect(child);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      killGroup(child, 'SIGKILL');
      reject(new Error(`${program} ${args.join(' ')}: did not finish within ${timeoutMs} ms; output:\n${out.all()}`));
    }, timeoutMs);
  });
  try {
    const code = await Promise.race([exitCode(child), timeout]);
    return { code, stdout: out.stdout(), stderr: out.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

export interface CliOptions {
  /** The controller's host:port (--controller). */
  address: string;
  /** The API token (--token); undefined = no --token at all. */
  token?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Piped to its stdin (e.g. for `--arg K=-`). */
  input?: string;
}

/** `grid-cli --controller A [--token T] args…` */
export function runCli(args: string[], opts: CliOptions): Promise<RunResult> {
  const globals = ['--controller', opts.address, ...(opts.token === undefined ? [] : ['--token', opts.token])];
  return runProgram('grid-cli', [...globals, ...args], { env: opts.env, cwd: opts.cwd, timeoutMs: opts.timeoutMs, input: opts.input });
}

// ---- the controller ----

/** API tokens of the test controllers, one per role. */
export const TOKENS = {
  admin: 'e2e-admin-token-0000000000',
  operator: 'e2e-operator-token-111111111',
  viewer: 'e2e-viewer-token-2222222222',
} as const;
export const REGISTRATION_TOKEN = 'e2e-registration-token-3333333';
/** TOKENS as the controller config's `tokens` (named after their roles); add to it for more. */
export const TOKEN_SPECS = Object.entries(TOKENS).map(([role, token]) => ({ name: role, token, role }));

export interface ControllerOptions {
  natsUrl: string;
  etcdEndpoint: string;
  /** Every node of a NATS cluster / member of an etcd cluster; default [natsUrl] / [etcdEndpoint]. */
  natsUrls?: string[];
  etcdEndpoints?: string[];
  /** etcd key prefix; default a fresh one ("/grid-e2e-<random>/"). Give the same to share state. */
  prefix?: string;
  /** Use this config file as it is instead of writing one. */
  configFile?: string;
  /** Keys merged over the written config file (ignored with configFile). */
  config?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Extra arguments after `start …`. */
  args?: string[];
}

export interface RunningController extends RunningProgram {
  /** host:port of its gRPC server. */
  address: string;
  prefix: string;
  configFile: string;
}

/** A fresh etcd prefix, so tests sharing an etcd do not see each other's keys. */
export function uniquePrefix(): string {
  return `/${uniqueName('grid-e2e')}/`;
}

/**
 * Writes a controller config file for the test servers: the three TOKENS (names "admin",
 * "operator", "viewer"), REGISTRATION_TOKEN, a temp data_dir; `extra` keys are merged over it
 * (those of `etcd` and `nats` key by key, e.g. `{ nats: { replicas: 3 } }`).
 */
export function writeControllerConfig(o: {
  natsUrl: string;
  etcdEndpoint: string;
  natsUrls?: string[];
  etcdEndpoints?: string[];
  prefix: string;
  extra?: Record<string, unknown>;
}): string {
  const dir = tempDir('grid-e2e-controller-');
  const { etcd, nats, ...extra } = (o.extra ?? {}) as { etcd?: object; nats?: object };
  const config = {
    data_dir: join(dir, 'data'),
    etcd: { endpoints: o.etcdEndpoints ?? [o.etcdEndpoint], prefix: o.prefix, ...etcd },
    nats: { servers: o.natsUrls ?? [o.natsUrl], auth_dir: natsAuthDirOf(o.natsUrl) ?? '', ...nats },
    tokens: TOKEN_SPECS,
    registration_tokens: [REGISTRATION_TOKEN],
    tls: controllerTlsConfig(),
    ...extra,
  };
  const file = join(dir, 'controller.json');
  writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}

/** `controller start` on the given NATS and etcd, listening on a free port; resolves once it is ready. */
export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const prefix = opts.prefix ?? uniquePrefix();
  const configFile = opts.configFile ?? writeControllerConfig({ ...opts, prefix, extra: opts.config });
  const args = [
    'start',
    '--config', configFile,
    '--grpc-address', '127.0.0.1:0',
    '--etcd-endpoints', (opts.etcdEndpoints ?? [opts.etcdEndpoint]).join(','),
    '--nats-servers', (opts.natsUrls ?? [opts.natsUrl]).join(','),
    ...(opts.args ?? []),
  ];
  const p = await startProgram('controller', args, { env: opts.env, ready: /controller ready address=(\S+)/ });
  return { ...p, address: p.ready[1]!, prefix, configFile };
}

/** Stops every program still running (SIGTERM, then SIGKILL) and removes the temp dirs. */
export async function cleanupProcesses(): Promise<void> {
  await Promise.allSettled(
    [...leftovers.children].map(async (child) => {
      const exited = exitCode(child);
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }),
  );
  for (const dir of leftovers.dirs) rmSync(dir, { recursive: true, force: true });
  leftovers.dirs.clear();
  isolatedHome = undefined;
}

// ---- plumbing ----

const leftovers = { children: new Set<ChildProcess>(), dirs: new Set<string>() };

function spawnTracked(program: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: boolean }): ChildProcess {
  atExit(killLeftovers);
  const env = childEnv(o.env);
  const child = spawn(process.execPath, [programPath(program), ...args], {
    env,
    cwd: o.cwd ?? env.HOME,
    stdio: [o.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    // Its own process group, so cleanup also reaches whatever it starts.
    detached: true,
  });
  leftovers.children.add(child);
  child.once('exit', () => leftovers.children.delete(child));
  return child;
}

interface Output {
  all(): string;
  stdout(): string;
  stderr(): string;
}

function collect(child: ChildProcess): Output {
  let all = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    all += s;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    all += s;
  });
  return { all: () => all, stdout: () => stdout, stderr: () => stderr };
}

/** Resolves once the child has exited and its output streams are closed. */
function exitCode(child: ChildProcess): Promise<number> {
  const toNumber = (code: number | null, signal: NodeJS.Signals | null): number =>
    code ?? 128 + (signal ? constants.signals[signal] : 0);
  if (child.exitCode !== null || child.signalCode !== null) {
    // 'close' may still be pending; it comes after 'exit'.
    if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) {
      return Promise.resolve(toNumber(child.exitCode, child.signalCode));
    }
  }
  return new Promise((resolve) => child.once('close', (code, signal) => resolve(toNumber(code, signal))));
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function killLeftovers(): void {
  for (const child of leftovers.children) killGroup(child, 'SIGKILL');
  leftovers.children.clear();
  for (const dir of leftovers.dirs) rmSync(dir, { recursive: true, force: true });
  leftovers.dirs.clear();
}
