// Shared pieces of `make bench`: the servers and controller it brings up (and always takes down),
// child-process bookkeeping, /proc readings and small statistics helpers.

import { spawn, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { GridClient } from '../../src/client/client.js';
import { freePort, startEtcd, startNats } from '../../src/embedded/index.js';
import { NatsAuthority } from '../../src/bus/authority.js';
import type { NatsUser } from '../../src/bus/connect.js';

/** dist/ (this file runs as dist/test/bench/lib.js). */
export const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ADMIN_TOKEN = 'bench-admin-' + randomBytes(12).toString('hex');
export const REGISTRATION_TOKEN = 'bench-registration-' + randomBytes(12).toString('hex');
const SECRETS_KEY = randomBytes(32).toString('base64');

// ---- what to clean up, even when the run is interrupted ----

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

export function track(child: ChildProcess): ChildProcess {
  hook();
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function tempDir(prefix: string): string {
  hook();
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

/** SIGKILLs every child still running and removes temp dirs (synchronous: usable on exit). */
export function killEverything(): void {
  for (const c of children) {
    try {
      if (c.pid) process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  children.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', killEverything);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping everything\n`);
      killEverything();
      process.exit(130);
    });
  }
}

/** Stops a child: SIGTERM, then SIGKILL after graceMs. */
export async function stopChild(c: ChildProcess, graceMs = 5_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

// ---- nats-server + etcd ----

export interface Servers {
  natsUrl: string;
  /** GRID's NATS keys (the controller's nats.auth_dir): NATS authenticates, as in production. */
  natsAuthDir: string;
  /** A user with every permission in the GRID account, for the baselines. */
  natsUser: NatsUser;
  etcdEndpoint: string;
  natsPid: number;
  etcdPid: number;
  dir: string;
  stop(): Promise<void>;
}

export async function startServers(): Promise<Servers> {
  const dir = tempDir('grid-bench-');
  const natsAuthDir = join(dir, 'nats-auth');
  const authority = await NatsAuthority.open(natsAuthDir, { create: true });
  const own = await authority.mintOwnUser('bench');
  const natsUser: NatsUser = { jwt: own.jwt, seed: own.seed };
  const nats = await startNats({
    dataDir: join(dir, 'nats'),
    logFile: join(dir, 'nats-server.log'),
    auth: { config: await authority.serverConfig(join(dir, 'nats', 'jwt')), user: natsUser },
  });
  const pids = new Set<number>([nats.pid]);
  let etcd;
  try {
    etcd = await startEtcd({ dataDir: join(dir, 'etcd'), logFile: join(dir, 'etcd.log') });
  } catch (err) {
    await nats.stop();
    throw err;
  }
  pids.add(etcd.pid);
  pidsToKill.push(...pids);
  usersByUrl.set(nats.url, natsUser);
  return {
    natsUrl: nats.url,
    natsAuthDir,
    natsUser,
    etcdEndpoint: etcd.endpoint,
    natsPid: nats.pid,
    etcdPid: etcd.pid,
    dir,
    async stop() {
      await Promise.allSettled([nats.stop(), etcd.stop()]);
      removeDir(dir);
    },
  };
}

/** Bench servers' NATS URL → the full-permission user the baselines connect as. */
const usersByUrl = new Map<string, NatsUser>();

export function natsUserFor(url: string): NatsUser | undefined {
  return usersByUrl.get(url);
}

// The embedded servers are spawned by src/embedded; kill them by pid if we exit abruptly.
const pidsToKill: number[] = [];
process.once('exit', () => {
  for (const pid of pidsToKill) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

// ---- the controller, as a child process ----

export interface ControllerOptions {
  servers: Servers;
  pingDeadlineSeconds: number;
  /** etcd prefix (default /grid/). */
  prefix?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Reuse this config file (restart); otherwise a new one is written. */
  configFile?: string;
  extra?: Record<string, unknown>;
}

export interface RunningController {
  pid: number;
  address: string;
  configFile: string;
  logFile: string;
  client: GridClient;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Node flags that make a process the bench starts write a CPU profile, when GRID_BENCH_CPU_PROF names a directory. */
export function cpuProfArgs(): string[] {
  const dir = process.env['GRID_BENCH_CPU_PROF'];
  return dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : [];
}

export async function startController(o: ControllerOptions): Promise<RunningController> {
  const dir = tempDir('grid-bench-ctl-');
  let configFile = o.configFile;
  if (!configFile) {
    const port = await freePort();
    configFile = join(dir, 'controller.json');
    writeFileSync(
      configFile,
      JSON.stringify(
        {
          grpc_address: `127.0.0.1:${port}`,
          http_address: '',
          data_dir: join(dir, 'data'),
          etcd: { endpoints: [o.servers.etcdEndpoint], prefix: o.prefix ?? '/grid/' },
          nats: { servers: [o.servers.natsUrl], auth_dir: o.servers.natsAuthDir },
          auth: 'tokens',
          tokens: [{ name: 'bench-admin', token: ADMIN_TOKEN, role: 'admin' }],
          registration_tokens: [REGISTRATION_TOKEN],
          executor_ping_deadline_seconds: o.pingDeadlineSeconds,
          secrets_key: SECRETS_KEY,
          log_level: o.logLevel ?? 'warn',
          // The simulated fleet shares one gRPC connection for thousands of executors, which
          // client certificates (one per executor) cannot do: gRPC runs in plaintext here.
          tls: { enabled: false },
          ...o.extra,
        },
        null,
        2,
      ),
    );
  }
  const cfg = JSON.parse(readFileSync(configFile, 'utf8')) as { grpc_address: string };
  const logFile = join(dirname(configFile), `controller-${Date.now()}.log`);
  const out = createWriteStream(logFile);
  const child = track(spawn(process.execPath, [...cpuProfArgs(), join(DIST, 'cmd', 'controller.js'), 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] }));
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const address = cfg.grpc_address;
  const client = new GridClient({ address, token: ADMIN_TOKEN, timeoutMs: 30_000, tls: { plaintext: true } });
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the controller exited with ${child.exitCode} while starting; see ${logFile}:\n${tail(logFile)}`);
    try {
      await client.ctl.whoAmI();
      break;
    } catch {
      if (Date.now() > until) {
        child.kill('SIGKILL');
        throw new Error(`the controller did not answer within 60 s; see ${logFile}:\n${tail(logFile)}`);
      }
      await delay(100);
    }
  }
  return {
    pid: child.pid!,
    address,
    configFile,
    logFile,
    client,
    child,
    async stop() {
      client.close();
      await stopChild(child, 10_000);
      out.end();
    },
  };
}

/** The last lines of a log, stack frames left out (the error's message is what matters). */
export function tail(file: string, lines = 8): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').filter((l) => !/^\s+at /.test(l)).slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---- the simulated executor fleet (fleet.ts), as a child process ----

export interface FleetOptions {
  controller: string;
  count: number;
  prefix: string;
  mode: 'worker' | 'heartbeat';
  groups?: string[];
  concurrency?: number;
  pingIntervalSeconds?: number;
  registerConcurrency?: number;
}

export interface FleetReady {
  type: 'ready';
  ids: string[];
  names: string[];
  registerMs: number;
  failed: number;
  firstError?: string;
}

export interface FleetStats {
  type: 'stats';
  beatsOk: number;
  beatsFailed: number;
  refused: number;
  firstError?: string;
}

export interface Fleet {
  child: ChildProcess;
  pid: number;
  /** Resolves when every executor is registered (or registration gave up). */
  ready: Promise<FleetReady>;
  registered(): number;
  stats(): Promise<FleetStats>;
  stop(): Promise<void>;
  kill(): void;
}

export function startFleet(o: FleetOptions): Fleet {
  const args = [
    '--controller', o.controller,
    '--count', String(o.count),
    '--prefix', o.prefix,
    '--mode', o.mode,
    '--token', REGISTRATION_TOKEN,
    '--groups', (o.groups ?? []).join(','),
    '--concurrency', String(o.concurrency ?? 16),
    '--ping-interval', String(o.pingIntervalSeconds ?? 10),
    '--register-concurrency', String(o.registerConcurrency ?? 16),
    '--work-dir', tempDir(`grid-bench-fleet-${o.prefix}-`),
  ];
  const child = track(fork(join(DIST, 'test', 'bench', 'fleet.js'), args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: cpuProfArgs() }));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  let registered = 0;
  const statWaiters: Array<(s: FleetStats) => void> = [];
  const ready = new Promise<FleetReady>((resolveReady, reject) => {
    child.on('message', (m: { type: string; registered?: number; ids?: string[] }) => {
      if (m.type === 'progress') registered = m.registered ?? registered;
      else if (m.type === 'ready') {
        registered = m.ids!.length;
        resolveReady(m as unknown as FleetReady);
      } else if (m.type === 'stats') statWaiters.shift()?.(m as unknown as FleetStats);
    });
    child.once('exit', (code, sig) => reject(new Error(`fleet ${o.prefix} exited (${code ?? sig}) before it was ready: ${stderr.trim().split('\n').slice(-5).join(' | ')}`)));
  });
  ready.catch(() => {});
  return {
    child,
    pid: child.pid!,
    ready,
    registered: () => registered,
    stats: () =>
      new Promise<FleetStats>((r, reject) => {
        if (!child.connected) return reject(new Error('fleet is gone'));
        statWaiters.push(r);
        child.send({ type: 'stats' });
        setTimeout(() => reject(new Error('fleet did not answer a stats request')), 10_000).unref();
      }),
    async stop() {
      if (child.connected) child.send({ type: 'stop' });
      await stopChild(child, 8_000);
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
}

// ---- /proc ----

const CLK_TCK = 100;

/** utime + stime of a process in seconds (0 if it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // After "(comm)": state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

export { rssBytes } from '../harness/proc.js';

// ---- the table ----

/** One row of the bench's table. */
export interface Row {
  scenario: string;
  figure: string;
  value: number | null;
  unit: string;
  target: string;
  met: boolean | null;
  baseline: number | null;
  baselineUnit: string;
  /** figure ÷ baseline */
  ratio: number | null;
  note: string;
}

// ---- statistics ----

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

export const now = (): number => performance.now();

/** Runs `fn` over `items` with at most `limit` in flight; stops taking new items once `stop()` is true. */
export async function pool<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  const it = items[Symbol.iterator]();
  let failure: unknown;
  const lane = async () => {
    for (;;) {
      if (failure !== undefined || stop()) return;
      const n = it.next();
      if (n.done) return;
      try {
        await fn(n.value);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, lane));
  if (failure !== undefined) throw failure;
}

export function* range(n: number): Iterable<number> {
  for (let i = 0; i < n; i++) yield i;
}
