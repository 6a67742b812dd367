// Shared pieces of `make bench`: the servers and controller it brings up (and always takes down),
// child-process bookkeeping, /proc readings and small statistics helpers.

import { spawn, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { GridClient } from '../../src/client/client.js';
import { Etcd3 } from 'etcd3';
import { freePort, startEtcd, startNats, type EtcdServerTls } from '../../src/embedded/index.js';
import { NatsAuthority } from '../../src/bus/authority.js';
import type { NatsTls, NatsUser } from '../../src/bus/connect.js';
import type { EtcdTls } from '../../src/store/kv.js';
import { CertificateAuthority } from '../../src/tls/ca.js';
import { embeddedTlsFiles, type EmbeddedTlsFiles } from '../../src/tls/setup.js';

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

/**
 * The bench runs GRID as in production: one CA (made as the embedded default makes it) signs the
 * certificates of nats-server and etcd (both TLS-only, etcd requiring client certificates), the
 * controller's gRPC server certificate and every executor's client certificate.
 */
export interface BenchTls {
  caFile: string;
  caKeyFile: string;
  caPem: string;
  /** What a client of etcd presents (Kv's `tls`): the CA and the controller's client pair. */
  etcd: EtcdTls;
  /** What a client of NATS needs (connectBus's `tls`): the CA. */
  nats: NatsTls;
}

export interface Servers {
  natsUrl: string;
  tls: BenchTls;
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
  const tls = await benchTls(dir);
  const diag = natsDiagnosis();
  const monitorPort = diag ? await freePort('127.0.0.1') : undefined;
  const nats = await startNats({
    ...(monitorPort ? { monitorPort } : {}),
    dataDir: join(dir, 'nats'),
    logFile: join(dir, 'nats-server.log'),
    auth: { config: await authority.serverConfig(join(dir, 'nats', 'jwt')), user: natsUser },
    tls: { cert_file: tls.files.serverCertFile, key_file: tls.files.serverKeyFile, ca_file: tls.files.caFile },
  });
  const pids = new Set<number>([nats.pid]);
  let etcd;
  try {
    etcd = await startEtcd({ dataDir: join(dir, 'etcd'), logFile: join(dir, 'etcd.log'), tls: etcdServerTls(tls.files) });
  } catch (err) {
    await nats.stop();
    throw err;
  }
  pids.add(etcd.pid);
  pidsToKill.push(...pids);
  const stopDiag = diag && monitorPort ? sampleVarz(monitorPort, join(diag.dir, `nats-varz-${diag.n}.jsonl`)) : undefined;
  usersByUrl.set(nats.url, { user: natsUser, caPem: tls.bench.caPem });
  return {
    natsUrl: nats.url,
    tls: tls.bench,
    natsAuthDir,
    natsUser,
    etcdEndpoint: etcd.endpoint,
    natsPid: nats.pid,
    etcdPid: etcd.pid,
    dir,
    async stop() {
      await stopDiag?.();
      await Promise.allSettled([nats.stop(), etcd.stop()]);
      if (diag) copyFileSync(join(dir, 'nats-server.log'), join(diag.dir, `nats-server-${diag.n}.log`));
      removeDir(dir);
    },
  };
}

/**
 * GRID_BENCH_NATS_DIAG=<dir>: for diagnosis, nats-server's monitoring port is opened, its /varz
 * sampled every 5 s into <dir>/nats-varz-<n>.jsonl, and its log kept as <dir>/nats-server-<n>.log;
 * each controller's log is kept there too, as <dir>/controller-<n>.log.
 */
let diagRuns = 0;
function natsDiagnosis(): { dir: string; n: number } | undefined {
  const dir = process.env['GRID_BENCH_NATS_DIAG'];
  if (!dir) return undefined;
  mkdirSync(dir, { recursive: true });
  return { dir, n: ++diagRuns };
}

/** Samples /varz's counters until the returned stop is called. */
function sampleVarz(port: number, file: string): () => Promise<void> {
  const out = createWriteStream(file, { flags: 'a' });
  const fields = ['cpu', 'mem', 'connections', 'total_connections', 'subscriptions', 'slow_consumers', 'in_msgs', 'out_msgs', 'in_bytes', 'out_bytes'];
  const timer = setInterval(() => {
    fetch(`http://127.0.0.1:${port}/varz`)
      .then((r) => r.json() as Promise<Record<string, unknown>>)
      .then((v) => out.write(JSON.stringify({ t: new Date().toISOString(), ...Object.fromEntries(fields.map((f) => [f, v[f]])) }) + '\n'))
      .catch(() => {});
  }, 5_000).unref();
  return async () => {
    clearInterval(timer);
    await new Promise<void>((r) => out.end(r));
  };
}

/** Bench servers' NATS URL → the full-permission user the baselines connect as, and the CA to verify it with. */
const usersByUrl = new Map<string, { user: NatsUser; caPem: string }>();

export function natsUserFor(url: string): { user: NatsUser; caPem: string } | undefined {
  return usersByUrl.get(url);
}

/**
 * GRID's CA and the embedded servers' certificates, made by the same code as the embedded
 * default's (CertificateAuthority.loadOrCreate, embeddedTlsFiles) under `<dir>/tls`.
 */
export async function benchTls(dir: string): Promise<{ bench: BenchTls; files: EmbeddedTlsFiles }> {
  const made = await CertificateAuthority.loadOrCreate(join(dir, 'tls'));
  const files = await embeddedTlsFiles({ ca: made.ca, caFile: made.certFile }, dir);
  return {
    files,
    bench: {
      caFile: made.certFile,
      caKeyFile: made.keyFile,
      caPem: made.ca.certPem,
      etcd: { ca_file: files.caFile, cert_file: files.clientCertFile, key_file: files.clientKeyFile },
      nats: { ca_file: files.caFile, cert_file: '', key_file: '' },
    },
  };
}

export function etcdServerTls(f: EmbeddedTlsFiles): EtcdServerTls {
  return { caFile: f.caFile, certFile: f.serverCertFile, keyFile: f.serverKeyFile, clientCertFile: f.clientCertFile, clientKeyFile: f.clientKeyFile };
}

/** An etcd3 client of the bench's TLS etcd, with the controller's client certificate. */
export function etcdClient(servers: Pick<Servers, 'etcdEndpoint' | 'tls'>): Etcd3 {
  const t = servers.tls.etcd;
  return new Etcd3({
    hosts: [servers.etcdEndpoint],
    credentials: { rootCertificate: readFileSync(t.ca_file), certChain: readFileSync(t.cert_file), privateKey: readFileSync(t.key_file) },
    grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
  });
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
  /** The controller's audit log (one JSON line per mutating request). */
  auditLog: string;
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
          etcd: { endpoints: [o.servers.etcdEndpoint], prefix: o.prefix ?? '/grid/', tls: o.servers.tls.etcd },
          nats: { servers: [o.servers.natsUrl], auth_dir: o.servers.natsAuthDir, tls: o.servers.tls.nats },
          auth: 'tokens',
          tokens: [{ name: 'bench-admin', token: ADMIN_TOKEN, role: 'admin' }],
          registration_tokens: [REGISTRATION_TOKEN],
          executor_ping_deadline_seconds: o.pingDeadlineSeconds,
          secrets_key: SECRETS_KEY,
          log_level: o.logLevel ?? 'warn',
          // gRPC over TLS with the bench's CA, which also issues each executor's client certificate.
          tls: { enabled: true, ca_cert_file: o.servers.tls.caFile, ca_key_file: o.servers.tls.caKeyFile },
          // One JSON line per mutating request (every Execute, every Register), as in production.
          audit_log: join(dir, 'audit.log'),
          ...o.extra,
        },
        null,
        2,
      ),
    );
  }
  const cfg = JSON.parse(readFileSync(configFile, 'utf8')) as { grpc_address: string; audit_log: string };
  const logFile = join(dirname(configFile), `controller-${Date.now()}.log`);
  const out = createWriteStream(logFile);
  const child = track(spawn(process.execPath, [...cpuProfArgs(), join(DIST, 'cmd', 'controller.js'), 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] }));
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const address = cfg.grpc_address;
  const client = new GridClient({ address, token: ADMIN_TOKEN, timeoutMs: 30_000, tls: { caPem: o.servers.tls.caPem } });
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
    auditLog: cfg.audit_log,
    client,
    child,
    async stop() {
      client.close();
      // A controller holding thousands of connections may take a while to write its CPU profile.
      await stopChild(child, cpuProfArgs().length ? 120_000 : 10_000);
      await new Promise<void>((r) => out.end(r));
      const diag = natsDiagnosis();
      if (diag) copyFileSync(logFile, join(diag.dir, `controller-${diag.n}.log`));
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

/**
 * When each executor last became EXPIRED, from the puts of its record (a record written again
 * while EXPIRED does not move the time). An executor that expired falsely early on, came back
 * and was later killed has its kill's expiry here, not the first one.
 */
export class ExpiryTimes {
  private readonly state = new Map<string, string>();
  private readonly at = new Map<string, number>();
  private readonly firstAt = new Map<string, number>();

  /** A put of an executor record, seen at `nowMs`. */
  put(rec: { id: string; state: string }, nowMs: number): void {
    if (rec.state === 'EXPIRED' && this.state.get(rec.id) !== 'EXPIRED') {
      this.at.set(rec.id, nowMs);
      if (!this.firstAt.has(rec.id)) this.firstAt.set(rec.id, nowMs);
    }
    this.state.set(rec.id, rec.state);
  }

  /** When it first became EXPIRED, if it ever did. */
  first(id: string): number | undefined {
    return this.firstAt.get(id);
  }

  /** When it last became EXPIRED, if it ever did. */
  last(id: string): number | undefined {
    return this.at.get(id);
  }

  /** Whether it was ever EXPIRED. */
  ever(id: string): boolean {
    return this.at.has(id);
  }
}

/**
 * How many of `times` fall in each phase, phases given in order by when they ended (a time after
 * the last phase's end is counted in the last): "1200 in registration to 10000, 3 in the window".
 */
export function byPhase(times: number[], phases: Array<{ name: string; endMs: number }>): string {
  const counts = phases.map(() => 0);
  for (const t of times) {
    const i = phases.findIndex((p) => t <= p.endMs);
    counts[i < 0 ? phases.length - 1 : i]!++;
  }
  return phases.flatMap((p, i) => (counts[i] ? [`${counts[i]} ${p.name}`] : [])).join(', ');
}

/**
 * The controller's "registration overran its time" warnings in its log, counted by the step
 * each was at ("12 at etcd create, 3 at certificate"), or '' when there were none.
 */
export function overrunSteps(logFile: string): string {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return '';
  }
  const steps = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.includes('registration overran its time')) continue;
    const step = /step=(?:"([^"]*)"|(\S+))/.exec(line);
    const name = step ? (step[1] ?? step[2]!) : 'an unnamed step';
    steps.set(name, (steps.get(name) ?? 0) + 1);
  }
  return [...steps].sort((a, b) => b[1] - a[1]).map(([name, count]) => `${count} at ${name}`).join(', ');
}

// ---- the simulated executor fleet (fleet.ts), as a child process ----

export interface FleetOptions {
  controller: string;
  /** The CA file executors verify the controller (and NATS) with; each gets its own client certificate. */
  caFile: string;
  count: number;
  prefix: string;
  mode: 'worker' | 'heartbeat';
  groups?: string[];
  concurrency?: number;
  pingIntervalSeconds?: number;
  registerConcurrency?: number;
  /**
   * Scheduling priority of the fleet process (0 = as the bench, 19 = lowest). A fleet that only
   * simulates load (the heartbeats scenario's 10,000 executors) runs below the processes under
   * test, as if on machines of its own: on 2 shared cores it would otherwise starve them.
   */
  nice?: number;
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
  /** The fleet process's RSS. */
  rssBytes: number;
}

export interface FleetWorking {
  type: 'working';
  workers: number;
  failed: number;
  ms: number;
  firstError?: string;
}

export interface Fleet {
  child: ChildProcess;
  pid: number;
  /** Resolves when every executor is registered (or registration gave up). */
  ready: Promise<FleetReady>;
  registered(): number;
  stats(): Promise<FleetStats>;
  /** Heartbeat mode: gives every executor its NATS connection and Worker; resolves when they run. */
  work(): Promise<FleetWorking>;
  /** Workers started so far (work()). */
  workers(): number;
  stop(): Promise<void>;
  kill(): void;
}

export function startFleet(o: FleetOptions): Fleet {
  const args = [
    '--controller', o.controller,
    '--ca-file', o.caFile,
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
  if (o.nice) setPriority(child.pid!, o.nice);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  let registered = 0;
  let workers = 0;
  const statWaiters: Array<(s: FleetStats) => void> = [];
  const workWaiters: Array<(w: FleetWorking) => void> = [];
  const ready = new Promise<FleetReady>((resolveReady, reject) => {
    child.on('message', (m: { type: string; registered?: number; ids?: string[]; workers?: number }) => {
      if (m.type === 'progress') registered = m.registered ?? registered;
      else if (m.type === 'work-progress') workers = m.workers ?? workers;
      else if (m.type === 'ready') {
        registered = m.ids!.length;
        resolveReady(m as unknown as FleetReady);
      } else if (m.type === 'stats') statWaiters.shift()?.(m as unknown as FleetStats);
      else if (m.type === 'working') {
        workers = m.workers ?? workers;
        workWaiters.shift()?.(m as unknown as FleetWorking);
      }
    });
    child.once('exit', (code, sig) => reject(new Error(`fleet ${o.prefix} exited (${code ?? sig}) before it was ready: ${stderr.trim().split('\n').slice(-5).join(' | ')}`)));
  });
  ready.catch(() => {});
  return {
    child,
    pid: child.pid!,
    ready,
    registered: () => registered,
    workers: () => workers,
    stats: () =>
      new Promise<FleetStats>((r, reject) => {
        if (!child.connected) return reject(new Error('fleet is gone'));
        statWaiters.push(r);
        child.send({ type: 'stats' });
        setTimeout(() => reject(new Error('fleet did not answer a stats request')), 10_000).unref();
      }),
    work: () =>
      new Promise<FleetWorking>((r, reject) => {
        if (!child.connected) return reject(new Error('fleet is gone'));
        workWaiters.push(r);
        child.send({ type: 'work' });
        child.once('exit', () => reject(new Error(`fleet ${o.prefix} exited while starting its workers`)));
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
