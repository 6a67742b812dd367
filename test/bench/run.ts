// `make bench` (node dist/test/bench/run.js [--quick] [--only a,b]): brings up its own
// nats-server, etcd and controller with every safety on (TLS everywhere, authentication, claims,
// the audit log), runs every scenario with the raw baseline measured in the same run, prints a
// table and the growth series, and writes .bench/results-<timestamp>.json.
//
// Each scenario has a hard time limit (and the whole run a budget); one that runs out is reported
// as "did not finish" with what it reached. Every process started here is stopped at the end.

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { createInbox, jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { GridClient } from '../../src/client/client.js';
import type { Execution as ExecutionRecord } from '../../src/domain/execution.js';
import { ExecutionState, ExecutorState, TaskState, type Execution } from '../../src/gen/grid/v1/types.js';
import { idAt, newId } from '../../src/util/ids.js';
import { Retention } from '../../src/controller/retention.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Defragmenter, etcdDbStatus, type EtcdDbStatus } from '../../src/store/etcd-maintenance.js';
import { Kv } from '../../src/store/kv.js';
import { startEtcd } from '../../src/embedded/index.js';
import { createLogger } from '../../src/util/log.js';
import { Growth } from './growth.js';
import {
  ADMIN_TOKEN,
  cpuProfArgs,
  cpuSeconds,
  DIST,
  benchTls,
  etcdClient,
  etcdServerTls,
  killEverything,
  median,
  now,
  percentile,
  pool,
  range,
  REGISTRATION_TOKEN,
  rssBytes,
  overrunSteps,
  byPhase,
  ExpiryTimes,
  startController,
  startFleet,
  startServers,
  natsUserFor,
  stopChild,
  tempDir,
  track,
  type Fleet,
  type Row,
  type RunningController,
  type Servers,
} from './lib.js';
import { bullmqPeers } from './peers.js';

// ---------------------------------------------------------------- options and scale

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick') || process.env['QUICK'] === '1';
const onlyArg = argv[argv.indexOf('--only') + 1];
const ONLY = argv.includes('--only') && onlyArg ? new Set(onlyArg.split(',')) : undefined;
/** make bench PEERS=1: the BullMQ baseline (peers.ts). */
const PEERS = argv.includes('--peers');

const SCALE = QUICK
  ? {
      throughput: 2_000,
      latency: 200,
      fanout: 200,
      host: 300,
      heartbeatExecutors: 1_000,
      heartbeatSteadyS: 15,
      heartbeatVictims: 20,
      heartbeatDeadlineS: 15,
      logBytes: 20 * 1024 * 1024,
      memExecutors: 1_000,
      memExecutions: 10_000,
      retentionExecutions: 10_000,
      fanoutRuns: 2,
      // Growth series (QUICK: each scaled down; the last point of each is the scenario's own scale).
      // The largest fan-out point is the heartbeats scenario's survivors (its executors less those killed).
      fanoutSeries: [20, 200, 980],
      throughputSeries: [1, 4, 16],
      throughputSeriesCount: 1_000,
      memSeries: [1_000, 10_000],
      heartbeatSeries: [100, 1_000],
      heartbeatFirstWindowS: 15,
      budgetS: 660,
    }
  : {
      throughput: 20_000,
      latency: 2_000,
      fanout: 1_000,
      host: 2_000,
      heartbeatExecutors: 10_000,
      heartbeatSteadyS: 120,
      heartbeatVictims: 100,
      heartbeatDeadlineS: 30,
      logBytes: 100 * 1024 * 1024,
      memExecutors: 10_000,
      memExecutions: 100_000,
      retentionExecutions: 100_000,
      fanoutRuns: 3,
      fanoutSeries: [100, 1_000, 9_900],
      throughputSeries: [1, 4, 16],
      throughputSeriesCount: 20_000,
      memSeries: [10_000, 100_000],
      heartbeatSeries: [1_000, 10_000],
      heartbeatFirstWindowS: 60,
      budgetS: 32 * 60,
    };
const HEARTBEAT_INTERVAL_S = 10;
const THROUGHPUT_IN_FLIGHT = 128;
const HOST_CONCURRENCY = 8;
const NOOP_EXECUTORS = 4;
const NOOP_CONCURRENCY = 16;

// The growth series (README, "Performance"): each figure at several scales, with its cost per unit.
const FULL_SERIES = { fanout: [100, 1_000, 10_000], throughput: [1, 4, 16], memory: [10_000, 100_000], heartbeats: [1_000, 10_000] };
const scaledFrom = (asked: number[]): string => `QUICK=1: scaled down from ${asked.map((n) => n.toLocaleString('en-US')).join(', ')}`;
const growth = new Growth();
growth.define({
  key: 'fanout', title: 'fan-out: one `all` execution → terminal (s) by executors', nUnit: 'executors', valueUnit: 's', perUnitLabel: 'ms per executor', terms: ['fixed per execution', 'per executor'], used: SCALE.fanoutSeries,
  note: `${QUICK ? `${scaledFrom(FULL_SERIES.fanout)}; ` : ''}the largest is the heartbeats scenario's executors less the ${SCALE.heartbeatVictims} killed`,
});
growth.define({
  key: 'throughput', title: 'throughput: wall ms per execution (= 1000 ÷ exec/s) by executors', nUnit: 'executors', valueUnit: 'ms', perUnitLabel: 'CPU ms per execution (all processes)', terms: ['per execution', 'per executor'], used: SCALE.throughputSeries,
  note: `${SCALE.throughput} executions at ${NOOP_EXECUTORS} (the throughput row), ${SCALE.throughputSeriesCount} at the others${QUICK ? '; QUICK=1: fewer executions' : ''}`,
});
growth.define({ key: 'memory', title: 'memory: controller RSS (MB) by stored executions', nUnit: 'executions', valueUnit: 'MB', perUnitLabel: 'KB of RSS per execution', terms: ['fixed (process, executors)', 'per stored execution'], used: SCALE.memSeries, ...(QUICK ? { note: scaledFrom(FULL_SERIES.memory) } : {}) });
growth.define({ key: 'heartbeats', title: `heartbeats: controller CPU (% of a core) by executors beating every ${HEARTBEAT_INTERVAL_S} s`, nUnit: 'executors', valueUnit: '% core', perUnitLabel: 'CPU µs per heartbeat', terms: ['idle', 'per executor'], used: SCALE.heartbeatSeries, ...(QUICK ? { note: scaledFrom(FULL_SERIES.heartbeats) } : {}) });

/** What runs as in production, printed in the header of the table. */
const SAFETY =
  'gRPC over TLS (each executor its own client certificate, checked on every executor call); NATS over TLS with JWT users (one per executor); ' +
  'etcd over TLS with client certificates; token authentication; claims (each task begun once, through BeginTasks); the audit log (a JSON line per mutating request)';

// ---------------------------------------------------------------- results

interface ScenarioResult {
  name: string;
  status: 'ok' | 'did not finish' | 'error' | 'skipped';
  seconds: number;
  limitSeconds: number;
  detail: string;
  extra: Record<string, unknown>;
}

const rows: Row[] = [];
const results: ScenarioResult[] = [];

class Ctx {
  readonly startedAt = Date.now();
  progress = '';
  closed = false;
  readonly extra: Record<string, unknown> = {};
  readonly cleanups: Array<() => Promise<void> | void> = [];
  constructor(
    readonly name: string,
    readonly limitMs: number,
  ) {}
  /** Soft deadline: loops stop a little before the hard limit so partial figures get reported. */
  get deadline(): number {
    return this.startedAt + this.limitMs - 3_000;
  }
  timedOut(): boolean {
    return this.closed || Date.now() > this.deadline;
  }
  left(): number {
    return Math.max(0, this.deadline - Date.now());
  }
  /** Adds a row after the last of its scenario (a figure measured during a later scenario joins its own). */
  row(r: Omit<Row, 'scenario'>): void {
    if (this.closed) return;
    const at = rows.map((x) => x.scenario).lastIndexOf(this.name);
    rows.splice(at < 0 ? rows.length : at + 1, 0, { scenario: this.name, ...r });
  }
  defer(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }
}

class DidNotFinish extends Error {}

/** Hard limit of each scenario, and the time reserved for it while earlier ones run (seconds). */
const SCENARIO_LIMITS_S: Record<string, { limit: [full: number, quick: number]; reserve: [full: number, quick: number] }> = {
  latency: { limit: [150, 15], reserve: [60, 8] },
  throughput: { limit: [360, 75], reserve: [120, 25] },
  'host runner': { limit: [150, 15], reserve: [40, 5] },
  logs: { limit: [120, 15], reserve: [20, 3] },
  ...(PEERS ? { peers: { limit: [180, 45], reserve: [90, 20] } } : {}),
  'fan-out': { limit: [240, 60], reserve: [90, 15] },
  // Registration through the series' scales, two CPU windows, the largest fan-out, the expiry.
  heartbeats: { limit: [1700, 360], reserve: [1100, 240] },
  memory: { limit: [260, 60], reserve: [90, 30] },
  retention: { limit: [300, 40], reserve: [150, 20] },
};
const ORDER = Object.keys(SCENARIO_LIMITS_S);
const runStart = Date.now();

function limitFor(name: string): number {
  const q = QUICK ? 1 : 0;
  const own = SCENARIO_LIMITS_S[name]!.limit[q] * 1000;
  // Keep the reserve of every scenario still to come, so that one slow scenario cannot eat the rest.
  const later = ORDER.slice(ORDER.indexOf(name) + 1).filter((n) => !ONLY || ONLY.has(n));
  const reserved = later.reduce((s, n) => s + SCENARIO_LIMITS_S[n]!.reserve[q] * 1000, 0);
  // --peers brings its own reserve: the other scenarios' limits are as without it.
  const left = (SCALE.budgetS + (SCENARIO_LIMITS_S['peers']?.reserve[q] ?? 0)) * 1000 - (Date.now() - runStart) - reserved;
  return Math.max(5_000, Math.min(own, left));
}

async function scenario(name: string, fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  if (ONLY && !ONLY.has(name)) return;
  const limitMs = limitFor(name);
  const ctx = new Ctx(name, limitMs);
  const t0 = Date.now();
  process.stderr.write(`\n▶ ${name} (limit ${Math.round(limitMs / 1000)} s)\n`);
  let status: ScenarioResult['status'] = 'ok';
  let detail = '';
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(ctx),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DidNotFinish(`hard limit of ${Math.round(limitMs / 1000)} s reached`)), limitMs);
      }),
    ]);
  } catch (err) {
    status = err instanceof DidNotFinish ? 'did not finish' : 'error';
    detail = (err as Error).message;
    if (!(err instanceof DidNotFinish)) process.stderr.write(`  ${name} failed: ${(err as Error).stack ?? detail}\n`);
    ctx.row({
      figure: status,
      value: null,
      unit: '',
      target: '',
      met: null,
      baseline: null,
      baselineUnit: '',
      ratio: null,
      note: `${detail}${ctx.progress ? `; reached: ${ctx.progress}` : ''}`,
    });
  } finally {
    clearTimeout(timer);
    ctx.closed = true;
    for (const c of ctx.cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        process.stderr.write(`  cleanup of ${name}: ${(err as Error).message}\n`);
      }
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  if (status === 'ok' && rows.some((r) => r.scenario === name && r.note.startsWith('did not finish'))) status = 'did not finish';
  results.push({ name, status, seconds, limitSeconds: limitMs / 1000, detail: detail || ctx.progress, extra: ctx.extra });
  process.stderr.write(`  ${name}: ${status} in ${seconds.toFixed(1)} s\n`);
}

// ---------------------------------------------------------------- helpers

const TERMINAL = new Set([
  ExecutionState.EXECUTION_STATE_SUCCEEDED,
  ExecutionState.EXECUTION_STATE_FAILED,
  ExecutionState.EXECUTION_STATE_CANCELLED,
  ExecutionState.EXECUTION_STATE_TIMED_OUT,
]);

function execReq(job: string, target: string, args: Record<string, string> = {}) {
  return { job, args, target, timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false };
}

async function createJob(client: GridClient, def: Record<string, unknown>): Promise<void> {
  await client.ctl.createJob({ definitionJson: JSON.stringify(def), replace: true, expectedVersion: 0 });
}

/** Execute → WatchExecution until terminal; returns the final snapshot. */
async function executeAndWatch(client: GridClient, job: string, target: string, args: Record<string, string> = {}, seen?: (x: Execution) => void) {
  const res = await client.ctl.execute(execReq(job, target, args));
  let last;
  for await (const x of client.ctl.watchExecution(res.executionId)) {
    last = x;
    seen?.(x);
    if (TERMINAL.has(x.state)) return x;
  }
  if (last && TERMINAL.has(last.state)) return last;
  // The stream ended without a terminal snapshot: read it.
  return client.ctl.getExecution(res.executionId);
}

/** Counts execution ids whose executions-active/ key is deleted, i.e. whose terminal state is recorded in etcd. */
async function watchTerminal(servers: Servers, prefix = '/grid/') {
  const etcd = etcdClient(servers);
  const keyPrefix = `${prefix}executions-active/`;
  const done = new Map<string, number>();
  // Deletes only: the puts of every state change are not this client's business (and parsing
  // them would load the machine the figures are measured on).
  const watcher = await etcd.watch().prefix(keyPrefix).only('delete').create();
  watcher.on('delete', (kv) => done.set(kv.key.toString().slice(keyPrefix.length), now()));
  return {
    done,
    async close() {
      await watcher.cancel().catch(() => {});
      etcd.close();
    },
  };
}

async function waitUntil(ctx: Ctx, cond: () => boolean | Promise<boolean>, stepMs = 100, untilMs = ctx.deadline): Promise<boolean> {
  for (;;) {
    if (await cond()) return true;
    if (ctx.timedOut() || Date.now() > untilMs) return false;
    await delay(stepMs);
  }
}

async function activeExecutors(client: GridClient): Promise<number> {
  const res = await client.ctl.listExecutors();
  return res.executors.filter((e) => e.state === ExecutorState.EXECUTOR_STATE_ACTIVE).length;
}

const MB = 1024 * 1024;

function countLines(file: string): number {
  try {
    const text = readFileSync(file, 'utf8');
    return text.length === 0 ? 0 : text.split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}
const fmt = (n: number | null, digits?: number): string => {
  if (n === null || !Number.isFinite(n)) return '—';
  const d = digits ?? (Number.isInteger(n) || Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
};

/** The baselines run on the same authenticating TLS NATS as GRID, as a user with every permission. */
async function natsConnect(url: string, name: string): Promise<NatsConnection> {
  const u = natsUserFor(url);
  return connect({
    servers: url,
    name,
    ...(u ? { authenticator: jwtAuthenticator(u.user.jwt, new TextEncoder().encode(u.user.seed)), tls: { ca: u.caPem } } : {}),
  });
}

// ---------------------------------------------------------------- group A: one controller, few executors

interface GroupA {
  servers: Servers;
  controller: RunningController;
  noopFleet?: Fleet;
  hostExecutor?: { name: string; pid: number; stop(): Promise<void> };
}

let groupA: GroupA | undefined;

async function ensureGroupA(ctx: Ctx, withNoopFleet: boolean): Promise<GroupA> {
  if (!groupA) {
    const servers = await startServers();
    try {
      const controller = await startController({ servers, pingDeadlineSeconds: 30 });
      groupA = { servers, controller };
      await createJob(controller.client, { name: 'bench-noop', description: 'no-op (noop runner stands in for host)', command: ['true'], timeout_seconds: 600 });
      await createJob(controller.client, { name: 'bench-true', description: '/bin/true through the host runner', command: ['/bin/true'], timeout_seconds: 600 });
      await createJob(controller.client, {
        name: 'bench-logs',
        description: 'writes BYTES bytes of 100-byte lines to stdout',
        shell: `yes '${'x'.repeat(99)}' | head -c "$BYTES"`,
        timeout_seconds: 600,
        env_vars: { secrets: [], args: [{ name: 'BYTES', type: 'int', required: true, description: 'how many bytes' }] },
      });
    } catch (err) {
      await servers.stop();
      throw err;
    }
  }
  const g = groupA;
  if (withNoopFleet && !g.noopFleet) {
    const fleet = startFleet({ controller: g.controller.address, caFile: g.servers.tls.caFile, count: NOOP_EXECUTORS, prefix: 'noop', mode: 'worker', concurrency: NOOP_CONCURRENCY, pingIntervalSeconds: 5 });
    g.noopFleet = fleet;
    await fleet.ready;
    if (!(await waitUntil(ctx, async () => (await activeExecutors(g.controller.client)) >= NOOP_EXECUTORS, 200))) {
      throw new Error('the noop executors did not become ACTIVE');
    }
  }
  if (!withNoopFleet && g.noopFleet) {
    await g.noopFleet.stop();
    g.noopFleet = undefined;
  }
  return g;
}

async function stopGroupA(): Promise<void> {
  if (!groupA) return;
  const g = groupA;
  groupA = undefined;
  await g.noopFleet?.stop();
  await g.hostExecutor?.stop();
  await g.controller.stop();
  await g.servers.stop();
}

/** A real `executor` process (host runner) in group hostbench. */
async function ensureHostExecutor(ctx: Ctx, g: GroupA): Promise<{ name: string; pid: number }> {
  if (g.hostExecutor) return g.hostExecutor;
  const dir = tempDir('grid-bench-exec-');
  const name = 'hostbench-1';
  const configFile = join(dir, 'executor.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      controller: g.controller.address,
      registration_token: REGISTRATION_TOKEN,
      name,
      groups: ['hostbench'],
      runners: ['host'],
      concurrency: HOST_CONCURRENCY,
      ping_interval_seconds: 5,
      state_file: join(dir, 'state.json'),
      work_dir: join(dir, 'work'),
      log_level: process.env['GRID_BENCH_EXECUTOR_LOG'] ? 'debug' : 'warn',
      log_max_bytes_per_task: SCALE.logBytes + 16 * MB,
      shutdown_grace_seconds: 2,
      ca_file: g.servers.tls.caFile, // TLS to the controller; the client certificate comes with register
    }),
  );
  const exe = join(DIST, 'cmd', 'executor.js');
  execFileSync(process.execPath, [exe, 'register', '--config', configFile, '--replace'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  // GRID_BENCH_EXECUTOR_LOG=file keeps the executor's own log (its warnings) for a look afterwards.
  const logFile = process.env['GRID_BENCH_EXECUTOR_LOG'];
  const stderr = logFile ? openSync(logFile, 'a') : 'ignore';
  const child = track(spawn(process.execPath, [...cpuProfArgs(), exe, 'start', '--config', configFile], { stdio: ['ignore', 'ignore', stderr] }));
  g.hostExecutor = { name, pid: child.pid!, stop: () => stopChild(child, 5_000) };
  const ok = await waitUntil(ctx, async () => {
    const res = await g.controller.client.ctl.listExecutors();
    return res.executors.some((e) => e.name === name && e.state === ExecutorState.EXECUTOR_STATE_ACTIVE);
  }, 200);
  if (!ok) throw new Error('the host executor did not become ACTIVE');
  return g.hostExecutor;
}

// ---------------------------------------------------------------- 1. latency

async function latencyScenario(ctx: Ctx): Promise<void> {
  const g = await ensureGroupA(ctx, true);
  const client = g.controller.client;
  const n = SCALE.latency;
  for (let i = 0; i < 10; i++) await executeAndWatch(client, 'bench-noop', 'any'); // warm-up, not counted
  const samples: number[] = [];
  // Where the time goes, from the record's own timestamps (wall clock, one machine).
  const hops = { accepted: [] as number[], started: [] as number[], ran: [] as number[], recorded: [] as number[], seen: [] as number[] };
  let failed = 0;
  for (let i = 0; i < n && !ctx.timedOut(); i++) {
    const t0 = now();
    const w0 = Date.now();
    const x = await executeAndWatch(client, 'bench-noop', 'any');
    const w1 = Date.now();
    samples.push(now() - t0);
    if (x.state !== ExecutionState.EXECUTION_STATE_SUCCEEDED) failed++;
    const t = x.tasks[0];
    if (t) {
      hops.accepted.push(x.createdAtMs - w0);
      hops.started.push(t.startedAtMs - x.createdAtMs);
      hops.ran.push(t.finishedAtMs - t.startedAtMs);
      hops.recorded.push(x.finishedAtMs - t.finishedAtMs);
      hops.seen.push(w1 - x.finishedAtMs);
    }
    ctx.progress = `${samples.length}/${n} executions`;
  }
  samples.sort((a, b) => a - b);
  const hopText = Object.entries(hops).map(([k, v]) => `${k} ${median(v).toFixed(1)}`).join(', ');

  // Baseline: JetStream publish → a consumer loop → core-NATS reply the client awaits.
  const base = await jetStreamRoundTrips(g.servers.natsUrl, n, ctx);
  const partial = samples.length < n ? `did not finish: ${samples.length} of ${n} in the time limit; ` : '';
  const note = `${partial}${samples.length} executions, ${failed} not SUCCEEDED; baseline over ${base.length} round trips; median ms from Execute called to: record created (accepted), task started, task finished (ran), execution terminal in etcd (recorded), client saw it (seen): ${hopText}`;
  const p50 = percentile(samples, 50);
  const p99 = percentile(samples, 99);
  const b50 = percentile(base, 50);
  const b99 = percentile(base, 99);
  ctx.extra['samples_ms'] = { p50, p90: percentile(samples, 90), p99, max: samples.at(-1), baseline_p50: b50, baseline_p99: b99 };
  ctx.row({ figure: 'Execute → terminal p50', value: p50, unit: 'ms', target: '≤ 5 ms', met: !partial && p50 <= 5, baseline: b50, baselineUnit: 'ms', ratio: p50 / b50, note });
  ctx.row({ figure: 'Execute → terminal p99', value: p99, unit: 'ms', target: '≤ 20 ms', met: !partial && p99 <= 20, baseline: b99, baselineUnit: 'ms', ratio: p99 / b99, note: '' });
}

async function jetStreamRoundTrips(url: string, n: number, ctx: Ctx): Promise<number[]> {
  const nc = await natsConnect(url, 'bench-rt-client');
  const nc2 = await natsConnect(url, 'bench-rt-worker');
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'BENCH_RT', subjects: ['bench.rt.>'], storage: StorageType.File, retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add('BENCH_RT', { durable_name: 'rt', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    const js = jetstream(nc);
    const js2 = jetstream(nc2);
    const consumer = await js2.consumers.get('BENCH_RT', 'rt');
    const messages = await consumer.consume({ max_messages: 64 });
    void (async () => {
      for await (const m of messages) {
        nc2.publish(`bench.rtreply.${m.subject.slice('bench.rt.'.length)}`, m.data);
        m.ack();
      }
    })().catch(() => {});
    const waiting = new Map<string, () => void>();
    const sub = nc.subscribe('bench.rtreply.>', { callback: (_e, m) => waiting.get(m.subject.slice('bench.rtreply.'.length))?.() });
    await nc.flush();
    const out: number[] = [];
    for (let i = 0; i < n + 20 && !ctx.timedOut(); i++) {
      const key = String(i);
      const t0 = now();
      const replied = new Promise<void>((r) => waiting.set(key, r));
      await js.publish(`bench.rt.${key}`, new Uint8Array(64));
      await replied;
      waiting.delete(key);
      if (i >= 20) out.push(now() - t0);
    }
    sub.unsubscribe();
    await messages.close();
    await jsm.streams.delete('BENCH_RT');
    return out.sort((a, b) => a - b);
  } finally {
    await nc.close();
    await nc2.close();
  }
}

// ---------------------------------------------------------------- 2. throughput

/**
 * CPU seconds used since creation by each named group of processes and by this one ("bench
 * client"), divided by `per` (a count of work, or wall seconds).
 */
function cpuMeter(pids: Record<string, number | number[]>): { per(n: number): Record<string, number> } {
  const used = (p: number | number[]) => (Array.isArray(p) ? p : [p]).reduce((s, pid) => s + cpuSeconds(pid), 0);
  const at0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, used(p)]));
  const self0 = process.cpuUsage();
  return {
    per(n) {
      const out: Record<string, number> = {};
      for (const [k, p] of Object.entries(pids)) out[k] = (used(p) - at0[k]!) / Math.max(1e-9, n);
      const self = process.cpuUsage(self0);
      out['bench client'] = (self.user + self.system) / 1e6 / Math.max(1e-9, n);
      return out;
    },
  };
}

function cpuText(ms: Record<string, number>): string {
  const total = Object.values(ms).reduce((a, b) => a + b, 0);
  return `${total.toFixed(2)} (${Object.entries(ms).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')})`;
}

/** `n` no-op executions on `target`, THROUGHPUT_IN_FLIGHT Execute calls in flight, first Execute → last terminal state in etcd. */
async function measureThroughput(ctx: Ctx, g: GroupA, target: string, n: number, fleetPid: number) {
  const client = g.controller.client;
  const watch = await watchTerminal(g.servers);
  ctx.defer(() => watch.close());
  const ids: string[] = [];
  let executeErrors = 0;
  let firstError = '';
  const cpu = cpuMeter({ controller: g.controller.pid, nats: g.servers.natsPid, etcd: g.servers.etcdPid, fleet: fleetPid });
  const t0 = now();
  let submittedAt = 0;
  const submitting = pool(range(n), THROUGHPUT_IN_FLIGHT, async () => {
    try {
      const res = await client.ctl.execute(execReq('bench-noop', target));
      ids.push(res.executionId);
    } catch (err) {
      executeErrors++;
      firstError ||= (err as Error).message;
    }
    if (ids.length % 500 === 0) ctx.progress = `${target}: ${ids.length} submitted, ${watch.done.size} terminal`;
  }, () => ctx.timedOut()).then(() => (submittedAt = now()));
  const terminalOf = () => ids.reduce((c, id) => c + (watch.done.has(id) ? 1 : 0), 0);
  await submitting;
  const finished = await waitUntil(ctx, () => {
    ctx.progress = `${target}: ${ids.length} submitted, ${watch.done.size} terminal`;
    return watch.done.size >= ids.length && terminalOf() >= ids.length;
  }, 100);
  const terminal = terminalOf();
  const cpuPerExec = Object.fromEntries(Object.entries(cpu.per(Math.max(1, terminal))).map(([k, v]) => [k, v * 1000]));
  const last = Math.max(...ids.map((id) => watch.done.get(id) ?? 0));
  const elapsed = ((finished ? last : now()) - t0) / 1000;
  // States of a sample: everything should have SUCCEEDED.
  const sample = ids.filter((id) => watch.done.has(id)).slice(-50);
  let notSucceeded = 0;
  for (const id of sample) if ((await client.ctl.getExecution(id)).state !== ExecutionState.EXECUTION_STATE_SUCCEEDED) notSucceeded++;
  await watch.close();
  const complete = finished && ids.length === n;
  return { rate: terminal / elapsed, terminal, elapsed, complete, submitted: ids.length, executeRate: ids.length / ((submittedAt - t0) / 1000), executeErrors, firstError, cpuPerExec, notSucceeded, sampled: sample.length };
}

async function throughputScenario(ctx: Ctx): Promise<void> {
  const g = await ensureGroupA(ctx, true);
  const n = SCALE.throughput;
  const m = await measureThroughput(ctx, g, 'any', n, g.noopFleet!.pid);
  const { rate, terminal, elapsed, cpuPerExec } = m;

  const auditLines = countLines(g.controller.auditLog);
  const base = await jetStreamPublishConsume(g.servers.natsUrl, n, ctx);
  const partial = m.complete ? '' : `did not finish: ${terminal} of ${n} terminal in ${elapsed.toFixed(0)} s; `;
  ctx.extra['detail'] = { submitted: m.submitted, terminal, elapsed_s: elapsed, execute_calls_per_s: m.executeRate, executeErrors: m.executeErrors, firstError: m.firstError, baseline: base, cpu_ms_per_execution: cpuPerExec };
  ctx.row({
    figure: 'Execute → terminal in etcd',
    value: rate,
    unit: 'exec/s',
    target: '≥ 2,500/s',
    met: partial === '' && rate >= 2500,
    baseline: base.rate,
    baselineUnit: 'msg/s',
    ratio: rate / base.rate,
    note: `${partial}${n} no-op executions, any, ${NOOP_EXECUTORS} executors × ${NOOP_CONCURRENCY}, ${THROUGHPUT_IN_FLIGHT} Execute in flight; Execute calls alone ${fmt(m.executeRate)}/s; CPU ms per execution ${cpuText(cpuPerExec)}; ${m.executeErrors} Execute errors${m.firstError ? ` (${m.firstError})` : ''}; ${m.notSucceeded}/${m.sampled} sampled not SUCCEEDED; audit log ${auditLines} lines so far`,
  });
  throughputPoint(NOOP_EXECUTORS, m);

  // The growth series: the same measurement over 1 and 16 executors, each set in a group of its
  // own (any:<group>) so that no other executor takes part.
  for (const executors of SCALE.throughputSeries.filter((e) => e !== NOOP_EXECUTORS)) {
    if (ctx.timedOut()) break;
    const group = `tp${executors}`;
    const fleet = startFleet({ controller: g.controller.address, caFile: g.servers.tls.caFile, count: executors, prefix: group, groups: [group], mode: 'worker', concurrency: NOOP_CONCURRENCY, pingIntervalSeconds: 5 });
    ctx.defer(() => fleet.stop());
    await fleet.ready;
    const ok = await waitUntil(ctx, async () => {
      const res = await g.controller.client.ctl.listExecutors();
      return res.executors.filter((e) => e.groups.includes(group) && e.state === ExecutorState.EXECUTOR_STATE_ACTIVE).length >= executors;
    }, 200);
    if (!ok) break;
    throughputPoint(executors, await measureThroughput(ctx, g, `any:${group}`, SCALE.throughputSeriesCount, fleet.pid));
    await fleet.stop();
  }
}

function throughputPoint(executors: number, m: Awaited<ReturnType<typeof measureThroughput>>): void {
  const cpuTotal = Object.values(m.cpuPerExec).reduce((a, b) => a + b, 0);
  growth.point('throughput', {
    n: executors,
    value: 1000 / m.rate,
    perUnit: cpuTotal,
    detail: `${fmt(m.rate)} exec/s over ${m.terminal}${m.complete ? '' : ` (did not finish: ${m.terminal} of ${m.submitted} submitted terminal)`}; CPU ms/exec ${cpuText(m.cpuPerExec)}`,
  });
}

async function jetStreamPublishConsume(url: string, n: number, ctx: Ctx): Promise<{ rate: number; count: number; seconds: number }> {
  const nc = await natsConnect(url, 'bench-tp-pub');
  const nc2 = await natsConnect(url, 'bench-tp-sub');
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'BENCH_TP', subjects: ['bench.tp.>'], storage: StorageType.File, retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add('BENCH_TP', { durable_name: 'tp', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    const consumer = await jetstream(nc2).consumers.get('BENCH_TP', 'tp');
    const messages = await consumer.consume({ max_messages: 1024 });
    let got = 0;
    let lastAt = 0;
    const consumed = (async () => {
      for await (const m of messages) {
        m.ack();
        lastAt = now();
        if (++got >= n) break;
      }
    })();
    const js = jetstream(nc);
    const payload = new Uint8Array(256);
    const t0 = now();
    await pool(range(n), THROUGHPUT_IN_FLIGHT, async (i) => void (await js.publish(`bench.tp.${i % 64}`, payload)), () => ctx.timedOut());
    await Promise.race([consumed, delay(Math.max(1, ctx.left()))]);
    await messages.close();
    await jsm.streams.delete('BENCH_TP');
    const seconds = ((lastAt || now()) - t0) / 1000;
    return { rate: got / seconds, count: got, seconds };
  } finally {
    await nc.close();
    await nc2.close();
  }
}

// ---------------------------------------------------------------- 3. host runner

async function hostScenario(ctx: Ctx): Promise<void> {
  const g = await ensureGroupA(ctx, false);
  await ensureHostExecutor(ctx, g);
  const client = g.controller.client;
  const n = SCALE.host;
  const watch = await watchTerminal(g.servers);
  ctx.defer(() => watch.close());
  const warm = await executeAndWatch(client, 'bench-true', 'any:hostbench');
  if (warm.state !== ExecutionState.EXECUTION_STATE_SUCCEEDED) throw new Error(`warm-up execution ended ${ExecutionState[warm.state]}: ${warm.reason}`);
  const ids: string[] = [];
  const t0 = now();
  await pool(range(n), 64, async () => void ids.push((await client.ctl.execute(execReq('bench-true', 'any:hostbench'))).executionId), () => ctx.timedOut());
  const terminalOf = () => ids.reduce((c, id) => c + (watch.done.has(id) ? 1 : 0), 0);
  const finished = await waitUntil(ctx, () => {
    ctx.progress = `${ids.length} submitted, ${terminalOf()} terminal`;
    return terminalOf() >= ids.length;
  });
  const terminal = terminalOf();
  const last = Math.max(...ids.map((id) => watch.done.get(id) ?? 0));
  const rate = terminal / (((finished ? last : now()) - t0) / 1000);
  const sample = ids.filter((id) => watch.done.has(id)).slice(-30);
  let notSucceeded = 0;
  for (const id of sample) if ((await client.ctl.getExecution(id)).state !== ExecutionState.EXECUTION_STATE_SUCCEEDED) notSucceeded++;

  // Baseline: plain spawn('/bin/true') at the executor's concurrency.
  const tb = now();
  let spawned = 0;
  await pool(range(n), HOST_CONCURRENCY, () =>
    new Promise<void>((resolve, reject) => {
      const c = spawn('/bin/true', [], { stdio: 'ignore' });
      c.once('error', reject);
      c.once('exit', () => {
        spawned++;
        resolve();
      });
    }), () => ctx.timedOut());
  const baseRate = spawned / ((now() - tb) / 1000);
  const partial = finished && ids.length === n ? '' : `did not finish: ${terminal} of ${n}; `;
  ctx.row({
    figure: '/bin/true via host runner',
    value: rate,
    unit: 'exec/s',
    target: '≥ 0.7 of baseline',
    met: partial === '' && rate / baseRate >= 0.7,
    baseline: baseRate,
    baselineUnit: 'spawn/s',
    ratio: rate / baseRate,
    note: `${partial}${n} executions, any:hostbench, 1 real executor process × ${HOST_CONCURRENCY}; baseline spawn('/bin/true') × ${HOST_CONCURRENCY} in flight; ${notSucceeded}/${sample.length} sampled not SUCCEEDED`,
  });
}

// ---------------------------------------------------------------- 4. logs

async function logsScenario(ctx: Ctx): Promise<void> {
  const g = await ensureGroupA(ctx, false);
  const exe = await ensureHostExecutor(ctx, g);
  const client = g.controller.client;
  const bytes = SCALE.logBytes;
  const cpu = cpuMeter({ executor: exe.pid, nats: g.servers.natsPid, controller: g.controller.pid });
  const t0 = now();
  const w0 = Date.now();
  const res = await client.ctl.execute(execReq('bench-logs', `node:${exe.name}`, { BYTES: String(bytes) }));
  /** Wall-clock times (one machine) of the first chunk: when the bus stored it and when it arrived here. */
  let firstStoredMs = 0;
  let firstSeenMs = 0;
  let lastStoredMs = 0;
  let lastSeenMs = 0;
  let first = 0;
  let last = 0;
  let got = 0;
  let chunks = 0;
  const abort = new AbortController();
  ctx.defer(() => abort.abort());
  for await (const c of client.ctl.getLogs({ executionId: res.executionId, follow: true }, abort.signal)) {
    if (c.stream !== 'stdout') continue;
    if (!first) {
      first = now();
      firstSeenMs = Date.now();
      firstStoredMs = c.atMs;
    }
    last = now();
    lastStoredMs = c.atMs;
    lastSeenMs = Date.now();
    got += c.data.length;
    chunks++;
    if (chunks % 200 === 0) ctx.progress = `${(got / MB).toFixed(1)} MB of ${(bytes / MB).toFixed(0)} MB`;
    if (ctx.timedOut()) break;
  }
  const cpuPerMb = cpu.per(got / MB);
  const x = await client.ctl.getExecution(res.executionId);
  const mbps = got / MB / ((last - first) / 1000);
  const firstMs = first - t0;

  // Baseline: the same bytes through a pipe into this process.
  const base = await new Promise<{ mbps: number; bytes: number }>((resolve, reject) => {
    const c = spawn('sh', ['-c', `yes '${'x'.repeat(99)}' | head -c ${bytes}`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let b0 = 0;
    let b1 = 0;
    let n = 0;
    c.stdout.on('data', (d: Buffer) => {
      if (!b0) b0 = now();
      b1 = now();
      n += d.length;
    });
    c.once('error', reject);
    c.once('close', () => resolve({ mbps: n / MB / ((b1 - b0) / 1000), bytes: n }));
  });
  const complete = got === bytes;
  let recount = '';
  if (!complete) {
    // Was the output lost, or did the follow stream end early? Read it again without follow.
    let again = 0;
    for await (const c of client.ctl.getLogs({ executionId: res.executionId, follow: false }, abort.signal)) if (c.stream === 'stdout') again += c.data.length;
    recount = again === bytes ? ` (a later GetLogs without follow returns all ${again} bytes: the follow stream ended early)` : ` (a later GetLogs without follow returns ${again} bytes)`;
  }
  const note = `${complete ? '' : `did not finish / incomplete: the follow client got ${got} of ${bytes} bytes${recount}; `}${(bytes / MB).toFixed(0)} MB of 100-byte lines through a real host-runner executor → GetLogs follow; ${chunks} chunks; execution ${ExecutionState[x.state].replace('EXECUTION_STATE_', '')}; stored by the bus from first to last chunk in ${lastStoredMs - firstStoredMs} ms, the last received ${lastSeenMs - lastStoredMs} ms after it was stored; CPU ms per MB ${cpuText(Object.fromEntries(Object.entries(cpuPerMb).map(([k, v]) => [k, v * 1000])))}`;
  ctx.row({ figure: 'logs throughput (first → last byte)', value: mbps, unit: 'MB/s', target: '≥ 150 MB/s', met: complete && mbps >= 150, baseline: base.mbps, baselineUnit: 'MB/s', ratio: mbps / base.mbps, note });
  const started = x.tasks[0]?.startedAtMs ?? 0;
  const hops = started && firstStoredMs ? `Execute → task started ${started - w0} ms, → first chunk stored ${firstStoredMs - started} ms, → received ${firstSeenMs - firstStoredMs} ms (wall clock)` : '';
  if (complete && !ctx.timedOut()) {
    // The same log through the command people use, printed to a pipe: the lines as the CLI prints them.
    const cli = await cliGetLogs(g.controller.address, g.servers.tls.caFile, res.executionId);
    ctx.row({ figure: 'grid-cli getlogs (read back, to a pipe)', value: cli.bytes / MB / (cli.ms / 1000), unit: 'MB/s', target: '(info)', met: null, baseline: base.mbps, baselineUnit: 'MB/s', ratio: cli.bytes / MB / (cli.ms / 1000) / base.mbps, note: `${cli.bytes} bytes printed, first → last byte; exit ${cli.code}; the execution had ended` });
  }
  ctx.row({ figure: 'first-line latency (Execute → chunk)', value: firstMs, unit: 'ms', target: '≤ 50 ms', met: firstMs <= 50, baseline: null, baselineUnit: '', ratio: null, note: hops });
}

/** `grid-cli getlogs ID` with its stdout into a pipe read here: bytes printed, first → last byte. */
async function cliGetLogs(address: string, caFile: string, executionId: string): Promise<{ bytes: number; ms: number; code: number | null }> {
  const configFile = join(tempDir('grid-bench-cli-'), 'client.json');
  writeFileSync(configFile, JSON.stringify({ controller: address, token: ADMIN_TOKEN, ca_file: caFile, timeout_ms: 60_000 }));
  const child = track(spawn(process.execPath, [join(DIST, 'cmd', 'grid-cli.js'), 'getlogs', executionId], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, GRID_CLIENT_CONFIG: configFile } }));
  let bytes = 0;
  let t0 = 0;
  let t1 = 0;
  child.stdout!.on('data', (d: Buffer) => {
    if (!t0) t0 = now();
    t1 = now();
    bytes += d.length;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  return { bytes, ms: t1 - t0, code };
}

// ---------------------------------------------------------------- 5. fan-out

async function fanoutScenario(ctx: Ctx): Promise<void> {
  const servers = await startServers();
  ctx.defer(() => servers.stop());
  const controller = await startController({ servers, pingDeadlineSeconds: 30 });
  ctx.defer(() => controller.stop());
  const client = controller.client;
  await createJob(client, { name: 'bench-noop', description: 'no-op', command: ['true'], timeout_seconds: 600 });
  // The fleet grows through the series' scales up to the scenario's (the largest point of the
  // series is measured by the heartbeats scenario, on its executors).
  const scales = [...new Set([...SCALE.fanoutSeries.filter((x) => x < SCALE.fanout), SCALE.fanout])];
  const perProcess = 500;
  const fleets: Fleet[] = [];
  let have = 0;
  for (const n of scales) {
    const tr = now();
    const before = fleets.length;
    for (let left = n - have; left > 0; left -= perProcess) {
      const f = startFleet({ controller: controller.address, caFile: servers.tls.caFile, count: Math.min(perProcess, left), prefix: `fan${fleets.length}`, mode: 'worker', concurrency: 4, pingIntervalSeconds: 10, registerConcurrency: 16 });
      fleets.push(f);
      ctx.defer(() => f.stop());
    }
    const registering = setInterval(() => (ctx.progress = `${have + fleets.slice(before).reduce((s, f) => s + f.registered(), 0)}/${n} executors registered`), 500);
    let ready;
    try {
      ready = await Promise.all(fleets.slice(before).map((f) => f.ready));
    } finally {
      clearInterval(registering);
    }
    const added = ready.reduce((s, r) => s + r.ids.length, 0);
    have += added;
    const registerS = (now() - tr) / 1000;
    const allActive = await waitUntil(ctx, async () => {
      const a = await activeExecutors(client);
      ctx.progress = `${a}/${n} executors ACTIVE`;
      return a >= have;
    }, 500);
    if (!allActive) throw new DidNotFinish(`only ${ctx.progress} before the time limit`);
    const m = await fanoutRuns(ctx, client, servers, have);
    const fig = median(m.runs);
    const registered = `${have}/${n} simulated executors in ${fleets.length} processes (each its own gRPC channel with its own client certificate, and its own NATS connection), the last ${added} registered in ${registerS.toFixed(0)} s`;
    growth.point('fanout', { n: have, value: fig, perUnit: (fig * 1000) / have, detail: `median of ${m.runs.length}; core NATS ${fmt(m.baseline)} s` });
    if (n !== SCALE.fanout) continue;
    ctx.extra['runs_s'] = m.runs;
    ctx.extra['baseline_s'] = m.baselineRuns;
    ctx.row({
      figure: `one \`all\` execution over ${have} executors`,
      value: fig,
      unit: 's',
      target: '≤ 0.4 s',
      met: have === n && fig <= 0.4,
      baseline: m.baseline,
      baselineUnit: 's',
      ratio: fig / m.baseline,
      note: `${m.note}; ${registered}`,
    });
  }
}

/**
 * One `all` execution over every ACTIVE executor, SCALE.fanoutRuns times after a warm-up run;
 * and the baseline: one core-NATS publish answered by as many subscribers.
 */
async function fanoutRuns(ctx: Ctx, client: GridClient, servers: Servers, n: number) {
  await delay(2_000); // let every worker's pull loops start
  // Where a run that does not end stands, for the note of a limit reached: its newest snapshot's
  // task states, summed every few seconds (not per snapshot: a big fan-out's come fast).
  let latest: { run: string; at: number; x?: Execution } = { run: '', at: 0 };
  const watching = (run: string) => {
    latest = { run, at: now() };
    return (x: Execution) => void (latest.x = x);
  };
  const where = setInterval(() => {
    const x = latest.x;
    if (!x) return;
    const states = new Map<string, number>();
    for (const t of x.tasks) {
      const k = TaskState[t.state].replace('TASK_STATE_', '');
      states.set(k, (states.get(k) ?? 0) + 1);
    }
    const tasks = [...states].map(([k, v]) => `${v} ${k}`).join(', ');
    ctx.progress = `${latest.run} over ${n} executors: ${ExecutionState[x.state].replace('EXECUTION_STATE_', '')} ${((now() - latest.at) / 1000).toFixed(0)} s after Execute; tasks: ${tasks}`;
  }, 3_000).unref();
  try {
    return await fanoutRunsWatched(ctx, client, servers, n, watching);
  } finally {
    clearInterval(where);
  }
}

async function fanoutRunsWatched(ctx: Ctx, client: GridClient, servers: Servers, n: number, watching: (run: string) => (x: Execution) => void) {
  // One run first, not counted: right after registration, a thousand simulated executors in two
  // processes are still looking up their consumers (one JetStream API request each) and making
  // their first pulls, so the first job messages wait for them.
  await executeAndWatch(client, 'bench-noop', 'all', {}, watching('the warm-up run'));
  const runs: number[] = [];
  const notes: string[] = [];
  const timelines: string[] = [];
  for (let r = 0; r < SCALE.fanoutRuns && !ctx.timedOut(); r++) {
    const t0 = now();
    const w0 = Date.now();
    const x = await executeAndWatch(client, 'bench-noop', 'all', {}, watching(`run ${r + 1}`));
    const w1 = Date.now();
    runs.push((now() - t0) / 1000);
    const ok = x.tasks.filter((t) => t.state === TaskState.TASK_STATE_SUCCEEDED).length;
    notes.push(`${ExecutionState[x.state].replace('EXECUTION_STATE_', '')} ${ok}/${x.tasks.length}`);
    // Where the time went (ms after Execute was called), from the record's own timestamps.
    const at = (ms: number) => String(Math.round(ms - w0));
    const started = x.tasks.map((t) => t.startedAtMs).filter((v) => v > 0);
    const finished = x.tasks.map((t) => t.finishedAtMs).filter((v) => v > 0);
    timelines.push(
      `created ${at(x.createdAtMs)}, first/last task started ${at(Math.min(...started))}/${at(Math.max(...started))}, last finished ${at(Math.max(...finished))}, recorded ${at(x.finishedAtMs)}, seen ${at(w1)}`,
    );
    ctx.progress = `${runs.length} runs over ${n} executors`;
  }

  const nc = await natsConnect(servers.natsUrl, 'bench-fan-responders');
  const nc2 = await natsConnect(servers.natsUrl, 'bench-fan-requester');
  const base: number[] = [];
  try {
    for (let i = 0; i < n; i++) nc.subscribe('bench.fan', { callback: (_e, m) => void m.respond(new Uint8Array(16)) });
    await nc.flush();
    for (let r = 0; r < SCALE.fanoutRuns; r++) {
      const inbox = createInbox();
      let got = 0;
      const t0 = now();
      await new Promise<void>((resolve) => {
        nc2.subscribe(inbox, { max: n, callback: () => {
          if (++got >= n) resolve();
        } });
        nc2.publish('bench.fan', new Uint8Array(16), { reply: inbox });
      });
      base.push((now() - t0) / 1000);
    }
  } finally {
    await nc.close();
    await nc2.close();
  }
  const note = `median of ${runs.length} runs after one warm-up run (${runs.map((s) => s.toFixed(2)).join(', ')} s; ${notes.join(', ')}); baseline: ${n} core subscribers on one connection; per run, ms after Execute: ${timelines.join(' | ')}`;
  return { runs, baselineRuns: base, baseline: median(base), note };
}

// ---------------------------------------------------------------- 6. heartbeats (and 7. memory, on what it leaves)

/**
 * The limit of the largest fan-out point (it runs inside the heartbeats scenario), Workers'
 * start included: the fleets start about 50 Workers a second at full scale (a NATS connection
 * over TLS with its own JWT user each, on a machine the 10,000 executors' heartbeats already
 * keep busy), so 9,900 take about 200 s.
 */
const FANOUT_AT_SCALE_S = QUICK ? 90 : 660;

/**
 * The heartbeats scenario's fleets run at this nice level (GRID_BENCH_FLEET_NICE, 0 = off): they
 * stand for 10,000 machines elsewhere, and on 2 shared cores the ten processes simulating them
 * (with their Workers, 10,000 NATS connections) otherwise take the CPU the controller needs.
 */
const FLEET_NICE = Number(process.env['GRID_BENCH_FLEET_NICE'] ?? 10);

/**
 * The largest fan-out point (10,000 less the 100 killed; QUICK 1,000 less 20), on the heartbeats
 * scenario's surviving executors: their
 * fleets give each executor its NATS connection and Worker, then one `all` execution as in the
 * fan-out scenario. Reported as a row of the fan-out scenario; bounded by its own time limit so
 * that the expiry measurement after it still runs.
 */
async function fanoutAtScale(controller: RunningController, servers: Servers, fleets: Fleet[], n: number, expiredSince: () => number): Promise<void> {
  const sub = new Ctx('fan-out', FANOUT_AT_SCALE_S * 1000);
  const figure = `one \`all\` execution over ${n} executors`;
  process.stderr.write(`  fan-out over ${n} executors (limit ${FANOUT_AT_SCALE_S} s)\n`);
  let timer: NodeJS.Timeout | undefined;
  let workersNote = '';
  try {
    await Promise.race([
      (async () => {
        await createJob(controller.client, { name: 'bench-noop', description: 'no-op', command: ['true'], timeout_seconds: 600 });
        const tw = now();
        const started = () => fleets.reduce((sum, f) => sum + f.workers(), 0);
        sub.progress = `starting ${n} Workers`;
        const progress = setInterval(() => (sub.progress = `starting ${n} Workers: ${started()} started after ${((now() - tw) / 1000).toFixed(0)} s`), 1_000).unref();
        const working = await Promise.all(fleets.map((f) => f.work())).finally(() => clearInterval(progress));
        const workers = working.reduce((s, w) => s + w.workers, 0);
        const failed = working.reduce((s, w) => s + w.failed, 0);
        const workS = (now() - tw) / 1000;
        workersNote = `${workers} Workers started in ${workS.toFixed(0)} s, ${failed} failed`;
        const m = await fanoutRuns(sub, controller.client, servers, n);
        const fig = median(m.runs);
        if (sub.closed) return;
        growth.point('fanout', { n, value: fig, perUnit: (fig * 1000) / n, detail: `median of ${m.runs.length}; core NATS ${fmt(m.baseline)} s` });
        sub.row({
          figure,
          value: fig,
          unit: 's',
          target: '≤ 3 s',
          met: m.runs.length === SCALE.fanoutRuns && workers === n && fig <= 3,
          baseline: m.baseline,
          baselineUnit: 's',
          ratio: fig / m.baseline,
          note: `${m.runs.length < SCALE.fanoutRuns ? 'did not finish: ' : ''}${m.note}; the heartbeats scenario's ${n} executors (${fleets.length} processes, each executor its own gRPC channel with its own client certificate), ${workers} Workers started in ${workS.toFixed(0)} s (own NATS connection each), ${failed} failed${working.find((w) => w.firstError)?.firstError ? ` (${working.find((w) => w.firstError)!.firstError})` : ''}; ${expiredSince()} of them EXPIRED meanwhile`,
        });
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DidNotFinish(`its limit of ${FANOUT_AT_SCALE_S} s reached`)), FANOUT_AT_SCALE_S * 1000);
      }),
    ]);
  } catch (err) {
    if (!(err instanceof DidNotFinish)) process.stderr.write(`  fan-out over ${n} failed: ${(err as Error).stack ?? String(err)}\n`);
    sub.row({ figure, value: null, unit: 's', target: '≤ 3 s', met: false, baseline: null, baselineUnit: '', ratio: null, note: `did not finish: ${(err as Error).message}; ${workersNote ? `${workersNote}; ` : ''}reached: ${sub.progress}; ${expiredSince()} of the ${n} EXPIRED meanwhile` });
  } finally {
    clearTimeout(timer);
    sub.closed = true;
  }
}

interface HeartbeatState {
  servers: Servers;
  controller: RunningController;
  survivors: Fleet[];
  executorIds: string[];
}
let heartbeatState: HeartbeatState | undefined;

async function heartbeatScenario(ctx: Ctx): Promise<void> {
  const servers = await startServers();
  const deadlineS = SCALE.heartbeatDeadlineS;
  const controller = await startController({ servers, pingDeadlineSeconds: deadlineS });
  const state: HeartbeatState = { servers, controller, survivors: [], executorIds: [] };
  heartbeatState = state;
  const n = SCALE.heartbeatExecutors;
  const victimsN = SCALE.heartbeatVictims;
  const victimIds = new Set<string>();
  const survivorIds: string[] = [];
  let registerFailed = 0;
  let registerError = '';

  // Watch executors/ from the start: every EXPIRED of a survivor (or of a victim before the kill) is false.
  const etcd = etcdClient(servers);
  ctx.defer(() => etcd.close());
  const expiries = new ExpiryTimes();
  const keyPrefix = '/grid/executors/';
  const watcher = await etcd.watch().prefix(keyPrefix).only('put').create();
  ctx.defer(() => watcher.cancel().catch(() => {}));
  watcher.on('put', (kv) => {
    try {
      const rec = JSON.parse(kv.value.toString()) as { id: string; state: string };
      expiries.put(rec, Date.now());
    } catch {
      // not an executor record
    }
  });

  // The fleet grows through the series' scales (heartbeat CPU at each); the victims, to be
  // killed at the end, are among the first registered. 1,000 executors a process: each has its
  // own gRPC channel (TLS, its own client certificate) and, for the fan-out, NATS connection.
  // Three Register calls in flight a process (27 for 9 processes, the controller working on 16):
  // with 24 each, calls queued past the fleet's timeout while the machine was saturated, and a
  // retry found its name taken by the first attempt, which had gone through.
  const perProcess = 1_000;
  const stages = [...new Set([...SCALE.heartbeatSeries.filter((x) => x < n), n])];
  const victims = startFleet({ controller: controller.address, caFile: servers.tls.caFile, count: victimsN, prefix: 'victim', mode: 'heartbeat', pingIntervalSeconds: HEARTBEAT_INTERVAL_S, registerConcurrency: 8, nice: FLEET_NICE });
  ctx.defer(() => victims.kill());
  const all = () => [...state.survivors, victims];
  const windows = stages.map((x) => (x === n ? SCALE.heartbeatSteadyS : SCALE.heartbeatFirstWindowS));
  let registerS = 0;
  let have = victimsN;
  let last: { wall: number; cpu: Record<string, number>; beats: number; beatFails: number; windowDone: boolean; rss: number } | undefined;
  /** Where the scenario was, for when false expiries happened. */
  const phases: Array<{ name: string; endMs: number }> = [];
  for (const [stage, executors] of stages.entries()) {
    const t0 = now();
    const before = state.survivors.length;
    for (let left = executors - have; left > 0; left -= perProcess) {
      state.survivors.push(
        startFleet({ controller: controller.address, caFile: servers.tls.caFile, count: Math.min(perProcess, left), prefix: `hb${state.survivors.length}`, mode: 'heartbeat', pingIntervalSeconds: HEARTBEAT_INTERVAL_S, registerConcurrency: 3, nice: FLEET_NICE }),
      );
    }
    const adding = [...state.survivors.slice(before), ...(stage === 0 ? [victims] : [])];
    const registering = setInterval(() => (ctx.progress = `${all().reduce((s, f) => s + f.registered(), 0)}/${executors} executors registered`), 500);
    // Leave time for the windows still to come, the 10,000-executor fan-out and the expiry.
    const rest = windows.slice(stage).reduce((s, w) => s + w + 5, 0) + FANOUT_AT_SCALE_S + deadlineS + 8;
    let ready;
    try {
      ready = await Promise.race([Promise.all(adding.map((f) => f.ready)), delay(Math.max(1_000, ctx.left() - rest * 1000)).then(() => undefined)]);
    } finally {
      clearInterval(registering);
    }
    if (!ready) {
      const overran = overrunSteps(controller.logFile);
      throw new DidNotFinish(
        `registration too slow: ${all().reduce((s, f) => s + f.registered(), 0)} of ${executors} executors registered (Register RPC incl. certificate and consumer creation), leaving no time for the ${windows[stage]} s window${overran ? `; registrations that overran their time, by step: ${overran}` : ''}`,
      );
    }
    registerS += (now() - t0) / 1000;
    phases.push({ name: `in registration to ${executors.toLocaleString('en-US')}`, endMs: Date.now() });
    for (const [i, r] of ready.entries()) {
      if (adding[i] === victims) r.ids.forEach((id) => victimIds.add(id));
      else survivorIds.push(...r.ids);
      registerFailed += r.failed;
      registerError ||= r.firstError ?? '';
    }
    have = survivorIds.length + victimIds.size;

    // Registration spread the first beats over its duration, so the beat rate is steady already;
    // a short pause lets the last Register calls' work settle before the CPU window.
    await delay(3_000);
    const stats0 = await Promise.all(all().map((f) => f.stats()));
    const meter = cpuMeter({ controller: controller.pid, nats: servers.natsPid, etcd: servers.etcdPid, fleet: all().map((f) => f.pid) });
    const w0 = now();
    while (now() - w0 < windows[stage]! * 1000 && !ctx.timedOut()) {
      await delay(1000);
      ctx.progress = `CPU window at ${have} executors ${((now() - w0) / 1000).toFixed(0)}/${windows[stage]} s`;
    }
    const wall = (now() - w0) / 1000;
    const cpu = Object.fromEntries(Object.entries(meter.per(wall)).map(([k, v]) => [k, v * 100]));
    const stats1 = await Promise.all(all().map((f) => f.stats()));
    const beats = stats1.reduce((s, x) => s + x.beatsOk, 0) - stats0.reduce((s, x) => s + x.beatsOk, 0);
    const beatFails = stats1.reduce((s, x) => s + x.beatsFailed, 0) - stats0.reduce((s, x) => s + x.beatsFailed, 0);
    const windowDone = wall >= windows[stage]! - 1;
    const fleetRss = stats1.reduce((s, x) => s + x.rssBytes, 0);
    growth.point('heartbeats', {
      n: have,
      value: cpu['controller']!,
      perUnit: ((cpu['controller']! / 100) * 1e6) / Math.max(1e-9, beats / wall),
      detail: `${windowDone ? '' : 'did not finish: '}${wall.toFixed(0)} s window, ${fmt(beats / wall)} beats/s; etcd ${fmt(cpu['etcd']!)} %, nats ${fmt(cpu['nats']!)} %; fleet RSS ${fmt(fleetRss / MB)} MB (${fmt(fleetRss / have / 1024)} KB/executor)`,
    });
    last = { wall, cpu, beats, beatFails, windowDone, rss: rssBytes(controller.pid) };
    phases.push({ name: `in the CPU window at ${have.toLocaleString('en-US')}`, endMs: Date.now() });
    ctx.extra[`fleet_rss_mb_at_${have}`] = fleetRss / MB;
  }
  state.executorIds = [...survivorIds, ...victimIds];
  const overran = overrunSteps(controller.logFile);
  const overranNote = overran ? `; registrations that overran their time, by step: ${overran}` : '';
  ctx.row({
    figure: `Register RPC (${n} executors)`,
    value: state.executorIds.length / registerS,
    unit: 'reg/s',
    target: '(info)',
    met: null,
    baseline: null,
    baselineUnit: '',
    ratio: null,
    note: `${state.executorIds.length} registered in ${registerS.toFixed(0)} s, ${registerFailed} failed${registerError ? ` (${registerError})` : ''}${overranNote}; includes a client certificate and JetStream consumer creation per executor`,
  });
  const { wall, cpu, beats, beatFails, windowDone, rss } = last!;
  const fleetCpu = cpu['fleet']!;
  ctx.row({
    figure: `controller CPU, ${state.executorIds.length} executors / ${HEARTBEAT_INTERVAL_S} s`,
    value: cpu['controller']!,
    unit: '% core',
    target: '≤ 10 %',
    met: windowDone && cpu['controller']! <= 10,
    baseline: null,
    baselineUnit: '',
    ratio: null,
    note: `${windowDone ? '' : 'did not finish: '}${wall.toFixed(0)} s window; ${fmt(beats / wall)} heartbeats/s answered, ${beatFails} failed; nats-server ${fmt(cpu['nats']!)} %, etcd ${fmt(cpu['etcd']!)} %, fleet processes ${fmt(fleetCpu)} %${FLEET_NICE ? ` (at nice ${FLEET_NICE})` : ''}`,
  });
  ctx.extra['cpu_percent'] = { ...cpu, fleet: fleetCpu, heartbeats_per_s: beats / wall, heartbeat_failures: beatFails };
  // The memory row (scenario 7) is the controller restarted on the registry and 100,000
  // executions, its executors silent; this one is the controller while they are all connected.
  ctx.row({
    figure: `controller RSS, ${state.executorIds.length} executors connected`,
    value: rss / MB,
    unit: 'MB',
    target: '≤ 200 MB',
    met: windowDone && rss / MB <= 200,
    baseline: null,
    baselineUnit: '',
    ratio: null,
    note: `at the end of the CPU window: each executor holds a TLS connection (HTTP/2) with its heartbeat stream open; ${fmt(rss / state.executorIds.length / 1024)} KB per executor`,
  });

  // Kill the victims' process: their heartbeats stop at once.
  const falseBefore = [...victimIds].filter((id) => expiries.ever(id)).length;
  const tKill = Date.now();
  victims.kill();
  const expiryWait = (deadlineS + 15) * 1000;
  await waitUntil(ctx, () => {
    const got = [...victimIds].filter((id) => (expiries.last(id) ?? 0) >= tKill).length;
    ctx.progress = `${got}/${victimIds.size} killed executors EXPIRED`;
    return got >= victimIds.size;
  }, 100, tKill + expiryWait);
  const delays = [...victimIds].map((id) => expiries.last(id)).filter((t): t is number => t !== undefined && t >= tKill).map((t) => (t - tKill) / 1000).sort((a, b) => a - b);
  const missing = victimIds.size - delays.length;
  const p99 = missing > 0 ? Infinity : percentile(delays, 99);
  ctx.row({
    figure: `expiry detection delay p99 (${victimIds.size} killed)`,
    value: missing > 0 ? null : p99,
    unit: 's',
    target: `≤ ${deadlineS + 1} s (deadline + 1)`,
    met: missing === 0 && p99 <= deadlineS + 1,
    baseline: null,
    baselineUnit: '',
    ratio: null,
    note: `${missing > 0 ? `${missing} of ${victimIds.size} not EXPIRED within ${expiryWait / 1000} s of the kill; ` : ''}p50 ${fmt(percentile(delays, 50))} s, max ${fmt(delays.at(-1) ?? NaN)} s; ping deadline ${deadlineS} s, interval ${HEARTBEAT_INTERVAL_S} s (delay from kill ∈ [deadline − interval, deadline] + detection)`,
  });
  const falseExpiries = survivorIds.filter((id) => expiries.ever(id)).length + falseBefore;
  phases.push({ name: 'after the kill', endMs: Infinity });
  const falseTimes = [...survivorIds, ...victimIds].flatMap((id) => {
    const t = expiries.first(id);
    return t !== undefined && !(victimIds.has(id) && t >= tKill) ? [t] : [];
  });
  const when = byPhase(falseTimes, phases);
  const stillActive = await activeExecutors(controller.client).then(String, (err: Error) => `? (ListExecutors failed: ${err.message.split('\n')[0]})`);
  ctx.row({
    figure: 'false expiries among survivors',
    value: falseExpiries,
    unit: '',
    target: '0',
    met: falseExpiries === 0,
    baseline: null,
    baselineUnit: '',
    ratio: null,
    note: `${when ? `first expired: ${when}; ` : ''}${survivorIds.length} survivors watched from before registration to the expiry measurement; ${stillActive} ACTIVE then. Heartbeat-only executors (registration + heartbeat + consumers, no Worker pulling jobs)`,
  });

  // The largest fan-out point, on the survivors, after the expiry figures (so that its load is
  // not in them): each fleet gives its executors a Worker (own NATS connection) now. Reported
  // as a row of the fan-out scenario, with the survivors that expired while it ran.
  const expiredBefore = survivorIds.filter((id) => expiries.ever(id)).length;
  await fanoutAtScale(controller, servers, state.survivors, survivorIds.length, () => survivorIds.filter((id) => expiries.ever(id)).length - expiredBefore);
}

async function memoryScenario(ctx: Ctx): Promise<void> {
  const st = heartbeatState;
  if (!st) throw new Error('needs the executors registered by the heartbeats scenario, which did not run');
  const nExecutions = SCALE.memExecutions;
  // The survivors stop heartbeating (their records stay registered); the controller is restarted.
  await Promise.all(st.survivors.map((f) => f.stop()));
  const configFile = st.controller.configFile;
  await st.controller.stop();

  // Finished executions written straight into etcd, in the controller's key format, batched; the
  // controller restarted on them at each scale of the series, the last one the scenario's own.
  const etcd = etcdClient(st.servers);
  ctx.defer(() => etcd.close());
  const executorIds = st.executorIds.length ? st.executorIds : ['01BENCH0000000000000000000'];
  const base = Date.now() - nExecutions * 10;
  let written = 0;
  let writeS = 0;
  const stages = [...new Set([...SCALE.memSeries.filter((x) => x < nExecutions), nExecutions])];
  for (const stage of stages) {
    const tw = now();
    const from = written;
    await pool(range(Math.ceil((stage - from) / 100)), 16, async (b) => {
      const ops = [];
      for (let i = from + b * 100; i < Math.min(stage, from + (b + 1) * 100); i++) {
        const x = benchExecution(i, base, { job: 'bench-noop', executorId: executorIds[i % executorIds.length]!, executors: executorIds.length });
        ops.push(etcd.put(`/grid/executions/${x.id}`).value(JSON.stringify(x)));
      }
      await etcd.if('/grid/bench-nonexistent', 'Create', '==', 0).then(...ops).commit();
      written += ops.length;
      ctx.progress = `${written}/${nExecutions} execution records written`;
    }, () => ctx.timedOut());
    writeS += (now() - tw) / 1000;
    if (written < stage) break;

    const controller = await startController({ servers: st.servers, pingDeadlineSeconds: SCALE.heartbeatDeadlineS, configFile });
    const samples: number[] = [];
    const settleS = QUICK ? 4 : 15;
    let after = 0;
    let settled = 0;
    let executors = 0;
    let listed = 0;
    try {
      for (let i = 0; i < settleS && !ctx.timedOut(); i++) {
        await delay(1000);
        samples.push(rssBytes(controller.pid));
      }
      settled = rssBytes(controller.pid);
      executors = (await controller.client.ctl.listExecutors()).executors.length;
      listed = (await controller.client.ctl.listExecutions({ limit: 1000 })).executions.length;
      await delay(2000);
      after = rssBytes(controller.pid);
    } finally {
      await controller.stop();
    }
    const peak = Math.max(...samples, after);
    const rss = Math.max(after, settled);
    growth.point('memory', { n: written, value: rss / MB, perUnit: (rss / written) / 1024, detail: `${executors} executors; settled ${fmt(settled / MB)} MB, after lists ${fmt(after / MB)} MB, peak ${fmt(peak / MB)} MB` });
    if (stage !== nExecutions) continue;
    ctx.extra['rss_mb'] = { settled: settled / MB, after_lists: after / MB, peak: peak / MB, samples: samples.map((s) => s / MB) };
    ctx.row({
      figure: 'controller RSS (after lists)',
      value: after / MB,
      unit: 'MB',
      target: '≤ 200 MB',
      met: written === nExecutions && rss / MB <= 200,
      baseline: null,
      baselineUnit: '',
      ratio: null,
      note: `${executors} executors registered (ListExecutors), ${written} finished executions in etcd (written directly in ${writeS.toFixed(0)} s; retention keeps up to 100,000), ListExecutions(limit 1000) → ${listed}; settled ${fmt(settled / MB)} MB after ${settleS} s, peak ${fmt(peak / MB)} MB`,
    });
  }
  if (written < nExecutions) {
    ctx.row({ figure: 'controller RSS (after lists)', value: null, unit: 'MB', target: '≤ 200 MB', met: false, baseline: null, baselineUnit: '', ratio: null, note: `did not finish: only ${written} of ${nExecutions} executions written` });
  }
}

/**
 * Retention: executions written in ten waves into two embedded etcds, each compacted after
 * every wave (as the embedded default does hourly): one pruned by the controller's retention
 * pass to a tenth of the total, the baseline not pruned. The pruned database stops growing;
 * the baseline grows with every wave. At the end the defragmenter gives back what the pruned
 * one no longer holds, and a list by state reads only its index.
 */
async function retentionScenario(ctx: Ctx): Promise<void> {
  const total = SCALE.retentionExecutions;
  const keep = total / 10;
  const waves = 10;
  const log = createLogger({ level: 'error' });
  const open = async (name: string) => {
    // TLS with client certificates, as the bench's other etcd (and the embedded default) serve.
    const dir = tempDir(`grid-bench-${name}-`);
    const tls = await benchTls(dir);
    const etcd = await startEtcd({ dataDir: join(dir, 'etcd'), tls: etcdServerTls(tls.files) });
    ctx.defer(() => etcd.stop());
    const kv = new Kv({ endpoints: [etcd.endpoint], prefix: '/grid/', tls: tls.bench.etcd });
    ctx.defer(() => kv.close());
    return { kv, store: new EtcdExecutionStore(kv) };
  };
  const pruned = await open('pruned');
  const baseline = await open('unpruned');
  const retention = new Retention({ store: pruned.store, policy: { maxAgeMs: 7 * 86_400_000, maxFinished: keep }, log });
  const compact = async (kv: Kv) => {
    const rev = await kv.revision();
    await kv.client.kv.compact({ revision: String(rev), physical: true });
  };
  const sizes: Array<{ pruned: EtcdDbStatus; baseline: EtcdDbStatus }> = [];
  const base = Date.now() - total * 10;
  let written = 0;
  let deleted = 0;
  for (let w = 0; w < waves && !ctx.timedOut(); w++) {
    const from = (w * total) / waves;
    await pool(range(total / waves), 256, async (i) => {
      const x = benchExecution(from + i, base);
      await Promise.all([pruned.store.create(x), baseline.store.create(x)]);
      written++;
      if (written % 1000 === 0) ctx.progress = `${written}/${total} executions written to both`;
    }, () => ctx.timedOut());
    deleted += await retention.pass();
    await Promise.all([compact(pruned.kv), compact(baseline.kv)]);
    // bbolt frees the compacted pages on a later commit: let both settle before measuring.
    await delay(1500);
    sizes.push({ pruned: await etcdDbStatus(pruned.kv), baseline: await etcdDbStatus(baseline.kv) });
  }
  const kept = await pruned.store.countFinished();
  const list = await pruned.store.list({ state: 'FAILED', limit: 20 });
  const defrag = await new Defragmenter({ kv: pruned.kv, log, policy: { minDbBytes: 0, maxInUseRatio: 1 } }).check();
  const last = sizes[sizes.length - 1]!;
  const mb = (b: number) => fmt(b / MB);
  ctx.extra['db_sizes'] = sizes.map((s) => ({ pruned_mb: s.pruned.dbSize / MB, pruned_in_use_mb: s.pruned.dbSizeInUse / MB, baseline_mb: s.baseline.dbSize / MB }));
  ctx.row({
    figure: `etcd database after ${written} executions, ${keep} kept`,
    value: last.pruned.dbSize / MB,
    unit: 'MB',
    target: 'bounded',
    met: written === total && kept <= keep && last.pruned.dbSize < last.baseline.dbSize / 2,
    baseline: last.baseline.dbSize / MB,
    baselineUnit: 'MB not pruned',
    ratio: last.pruned.dbSize / last.baseline.dbSize,
    note:
      `${kept} finished kept, ${deleted} pruned; database per wave of ${total / waves} (pruned / not pruned, MB): ` +
      sizes.map((s) => `${mb(s.pruned.dbSize)}/${mb(s.baseline.dbSize)}`).join(', ') +
      `; defragmented at the end: ${mb(defrag.before.dbSize)} → ${mb(defrag.after?.dbSize ?? defrag.before.dbSize)} MB; ` +
      `executions list --state FAILED --limit 20 read ${list.keysRead} keys for ${list.executions.length} executions`,
  });
}

/** The i-th finished execution of a bench run, created at base + 10 ms × i: one in a hundred FAILED. */
function benchExecution(i: number, base: number, o: { job?: string; executorId?: string; executors?: number } = {}): ExecutionRecord {
  const at = base + i * 10;
  const failed = i % 100 === 0;
  const executors = o.executors ?? 50;
  return {
    id: idAt(at),
    job: o.job ?? `bench-job-${i % 20}`,
    job_version: 1,
    args: { TARGET: `host-${i % 500}` },
    secret_names: [],
    target: 'any',
    requester: 'bench-admin',
    state: failed ? 'FAILED' : 'SUCCEEDED',
    reason: failed ? '1 failed of 1 tasks' : '1 succeeded of 1 tasks',
    created_at_ms: at,
    updated_at_ms: at + 5,
    finished_at_ms: at + 5,
    timeout_seconds: 600,
    deadline_ms: at + 600_000,
    wait_offline_ms: 0,
    batch_size: 0,
    max_failures: 0,
    tasks: [
      { key: 'pool.all.0', executor_id: o.executorId ?? '01BENCH0000000000000000000', executor_name: `exec-${i % executors}`, pool: 'all', state: failed ? 'FAILED' : 'SUCCEEDED', attempts: 1, exit_code: failed ? 1 : 0, started_at_ms: at + 1, finished_at_ms: at + 4, reason: failed ? 'exit code 1' : 'exit code 0', wave: 0 },
    ],
  };
}

// ---------------------------------------------------------------- peers (--peers)

/** BullMQ with the throughput and latency scenarios' load, then GRID ÷ BullMQ from their rows. */
async function peersScenario(ctx: Ctx): Promise<void> {
  const o = { jobs: SCALE.throughput, roundTrips: SCALE.latency, inFlight: THROUGHPUT_IN_FLIGHT, workers: NOOP_EXECUTORS, concurrency: NOOP_CONCURRENCY };
  await bullmqPeers({ ...o, timedOut: () => ctx.timedOut(), progress: (t) => (ctx.progress = t), row: (r) => ctx.row(r), defer: (fn) => ctx.defer(fn) }, rows);
}

// ---------------------------------------------------------------- main

function versionOf(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5_000 }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

function printTable(): string {
  const header = ['scenario', 'figure', 'value', 'target', 'baseline', 'ratio', 'met?'];
  const body = rows.map((r) => [
    r.scenario,
    r.figure,
    r.value === null ? '—' : `${fmt(r.value)}${r.unit ? ' ' + r.unit : ''}`,
    r.target,
    r.baseline === null ? '—' : `${fmt(r.baseline)} ${r.baselineUnit}`,
    r.ratio === null ? '—' : fmt(r.ratio, 2),
    r.met === null ? '—' : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  const out = [line(header), '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |', ...body.map(line)];
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.scenario} / ${r.figure}: ${r.note}`);
  return `${out.join('\n')}\n\nratio = figure ÷ baseline (same run). Notes:\n${notes.join('\n')}\n`;
}

async function main(): Promise<void> {
  const env = {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memory_gb: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    nats_server: versionOf('nats-server', ['--version']),
    etcd: versionOf('etcd', ['--version']),
    quick: QUICK,
    scale: SCALE,
    safety: SAFETY,
  };
  const head = [
    `GRID bench — ${new Date().toISOString()}${QUICK ? '  [QUICK=1: scaled down]' : ''}`,
    `machine: ${env.cores} cores (${env.cpu}), ${env.memory_gb} GB; node ${env.node}; ${env.nats_server}; ${env.etcd}`,
    QUICK
      ? `QUICK scale: throughput ${SCALE.throughput}, latency ${SCALE.latency}, fan-out ${SCALE.fanout}, host ${SCALE.host}, heartbeats ${SCALE.heartbeatExecutors} for ${SCALE.heartbeatSteadyS} s (deadline ${SCALE.heartbeatDeadlineS} s, ${SCALE.heartbeatVictims} killed), logs ${SCALE.logBytes / MB} MB, memory ${SCALE.memExecutors}/${SCALE.memExecutions} — figures at the issue's scale need the full run`
      : "full scale (issue 17's targets)",
    `on, in every scenario: ${SAFETY}`,
  ].join('\n');
  process.stdout.write(head + '\n');

  await scenario('latency', latencyScenario);
  await scenario('throughput', throughputScenario);
  await scenario('host runner', hostScenario);
  await scenario('logs', logsScenario);
  await stopGroupA().catch((err) => process.stderr.write(`stopping group A: ${(err as Error).message}\n`));
  if (PEERS) await scenario('peers', peersScenario);
  await scenario('fan-out', fanoutScenario);
  await scenario('heartbeats', heartbeatScenario);
  await scenario('memory', memoryScenario);
  await scenario('retention', retentionScenario);
  if (heartbeatState) {
    const st = heartbeatState;
    await Promise.allSettled(st.survivors.map((f) => f.stop()));
    await st.controller.stop().catch(() => {});
    await st.servers.stop().catch(() => {});
  }

  const table = printTable();
  const total = (Date.now() - runStart) / 1000;
  process.stdout.write(`\n${head}\n\n${table}\nGrowth series${QUICK ? ' (QUICK=1: scaled down, see each title)' : ''}:\n\n${growth.print()}\ntotal ${total.toFixed(0)} s\n`);
  const dir = join(process.cwd(), '.bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `results-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ env, total_seconds: total, rows, growth: growth.json(), scenarios: results }, null, 2) + '\n');
  process.stdout.write(`results written to ${file}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await stopGroupA().catch(() => {});
  killEverything();
  // gRPC channels and etcd clients may keep the loop alive; everything is reported by now.
  setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
}
void ADMIN_TOKEN;
