// The peers of `make bench PEERS=1` (run.ts --peers): BullMQ on Redis, measured in the same run
// as GRID and with GRID's own load pattern, so that the GRID ÷ BullMQ ratios compare like with like.
//
// Each persistence mode gets its own redis-server (from Debian's package; random loopback port,
// temp dir, stopped at the end and on Ctrl-C through lib.ts's track/tempDir):
//   - persistence off: --save '' --appendonly no;
//   - durable: --appendonly yes --appendfsync always (every write fsynced before it is answered,
//     as etcd fsyncs its WAL before it answers GRID), RDB snapshots off (--save '').
// In each: (a) concurrent single Queue.add calls, the throughput scenario's count and in-flight
// limit, first add → last job completed; (b) the same count through Queue.addBulk in chunks of
// 1,000; (c) one job at a time, add → Job.waitUntilFinished (QueueEvents) round trip.
// The workers mirror the throughput scenario's simulated executors: as many Workers, each with
// the same concurrency, in one child process of their own (this file, run as
// `node dist/test/bench/peers.js --bullmq-workers PORT COUNT CONCURRENCY`), with a no-op processor.
// Completed jobs are kept (BullMQ's default), as GRID keeps every execution's record.

import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Queue, QueueEvents, Worker, type ConnectionOptions } from 'bullmq';
import { freePort } from '../../src/embedded/index.js';
import { cpuSeconds, DIST, now, percentile, pool, range, removeDir, stopChild, tempDir, track, type Row } from './lib.js';

/** A row of the table, less its scenario (run.ts adds it). */
export type PeerRow = Omit<Row, 'scenario'>;

/** A row GRID measured earlier in the same run. */
export type GridRow = Pick<Row, 'scenario' | 'figure' | 'value' | 'unit' | 'note'>;

export interface PeerOptions {
  /** Jobs for (a) and (b): the throughput scenario's count. */
  jobs: number;
  /** Round trips for (c): the latency scenario's count. */
  roundTrips: number;
  /** Single adds in flight: the throughput scenario's Execute calls in flight. */
  inFlight: number;
  workers: number;
  concurrency: number;
  timedOut(): boolean;
  progress(text: string): void;
  row(r: PeerRow): void;
  defer(fn: () => Promise<void> | void): void;
}

/** The issue's throughput target against the peer: GRID ≥ 0.4 × BullMQ (durable, single adds). */
const TARGET_RATIO = 0.4;
const BULK_CHUNK = 1_000;
const WARM_UP = 10;
const WARM_UP_JOBS = 500;

interface Mode {
  key: 'off' | 'durable';
  label: string;
  args: string[];
}

const MODES: Mode[] = [
  { key: 'off', label: 'persistence off', args: ['--save', '', '--appendonly', 'no'] },
  { key: 'durable', label: 'AOF fsync always', args: ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'] },
];

interface Measured {
  single: number | null;
  bulk: number | null;
  p50: number | null;
  p99: number | null;
}

/** Measures BullMQ in both modes (rows as it goes), then the GRID ÷ BullMQ rows from `grid`. */
export async function bullmqPeers(o: PeerOptions, grid: readonly GridRow[]): Promise<void> {
  const version = versionOf();
  const measured: Partial<Record<Mode['key'], Measured>> = {};
  for (const mode of MODES) {
    if (o.timedOut()) break;
    measured[mode.key] = await measureMode(o, mode, version);
  }
  gridRatios(o, grid, measured);
}

// ---- redis-server and the worker process ----

interface RedisServer {
  pid: number;
  connection: ConnectionOptions;
  stop(): Promise<void>;
}

async function startRedis(mode: Mode): Promise<RedisServer> {
  const dir = tempDir('grid-bench-redis-');
  const port = await freePort();
  const child = track(
    spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--protected-mode', 'yes', ...mode.args], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let out = '';
  const stop = async () => {
    await stopChild(child, 5_000);
    removeDir(dir);
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not get ready within 15 s:\n${out.slice(-1000)}`)), 15_000);
      const onData = (d: Buffer) => {
        out = (out + d.toString()).slice(-10_000);
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('error', (err) => reject(new Error(`redis-server: ${err.message} (make bench PEERS=1 installs it)`)));
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) while starting:\n${out.slice(-1000)}`)));
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, connection: { host: '127.0.0.1', port }, stop };
}

interface WorkerProcess {
  pid: number;
  /** Starts the Workers on `queue`; resolves when they are ready. */
  run(queue: string): Promise<void>;
  /** Closes the Workers (the process stays). */
  close(): Promise<void>;
  stop(): Promise<void>;
}

function startWorkerProcess(port: number, count: number, concurrency: number): WorkerProcess {
  const child = track(fork(join(DIST, 'test', 'bench', 'peers.js'), ['--bullmq-workers', String(port), String(count), String(concurrency)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] }));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_000)));
  const ask = (msg: { type: 'run'; queue: string } | { type: 'close' }, answer: string) =>
    new Promise<void>((resolve, reject) => {
      const onMessage = (m: { type: string; error?: string }) => {
        if (m.type !== answer && m.type !== 'error') return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (m.type === 'error') reject(new Error(`BullMQ workers: ${m.error}`));
        else resolve();
      };
      const onExit = (code: number | null) => reject(new Error(`the BullMQ worker process exited (${code}): ${stderr.trim()}`));
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(msg);
    });
  return {
    pid: child.pid!,
    run: (queue) => ask({ type: 'run', queue }, 'running'),
    close: () => ask({ type: 'close' }, 'closed'),
    stop: () => stopChild(child, 5_000),
  };
}

/** The worker process: `count` Workers × `concurrency`, a no-op processor each, driven over IPC. */
async function workerMain(port: number, count: number, concurrency: number): Promise<void> {
  const connection: ConnectionOptions = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  let workers: Worker[] = [];
  const send = (m: unknown) => process.connected && process.send!(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: { type: string; queue?: string }) => {
    void (async () => {
      try {
        if (m.type === 'run') {
          workers = Array.from({ length: count }, () => new Worker(m.queue!, async () => {}, { connection, concurrency }));
          for (const w of workers) w.on('error', (err) => send({ type: 'error', error: err.message }));
          await Promise.all(workers.map((w) => w.waitUntilReady()));
          send({ type: 'running' });
        } else if (m.type === 'close') {
          await Promise.all(workers.map((w) => w.close()));
          workers = [];
          send({ type: 'closed' });
        }
      } catch (err) {
        send({ type: 'error', error: (err as Error).message });
      }
    })();
  });
}

// ---- the measurements ----

async function measureMode(o: PeerOptions, mode: Mode, version: string): Promise<Measured> {
  const redis = await startRedis(mode);
  o.defer(() => redis.stop());
  const workers = startWorkerProcess((redis.connection as { port: number }).port, o.workers, o.concurrency);
  o.defer(() => workers.stop());
  const setup = `${version}, ${mode.label}; ${o.workers} workers × ${o.concurrency} in one process, no-op processor`;
  await warmUp(o, mode, redis, workers);
  const single = await throughput(o, mode, redis, workers, 'single', setup);
  const bulk = o.timedOut() ? null : await throughput(o, mode, redis, workers, 'bulk', setup);
  const rt = o.timedOut() ? null : await roundTrips(o, mode, redis, workers, setup);
  await workers.stop();
  await redis.stop();
  return { single, bulk, p50: rt?.p50 ?? null, p99: rt?.p99 ?? null };
}

function newQueue(name: string, redis: RedisServer): { queue: Queue; errors: () => string } {
  const queue = new Queue(name, { connection: redis.connection });
  let first = '';
  queue.on('error', (err) => (first ||= err.message));
  return { queue, errors: () => first };
}

/** Adds n jobs (single adds, o.inFlight at a time, or bulk chunks) and waits until they are completed. */
async function addAndDrain(o: PeerOptions, queue: Queue, how: 'single' | 'bulk', n: number, what: string) {
  const t0 = Date.now();
  let added = 0;
  if (how === 'single') {
    await pool(range(n), o.inFlight, async (i) => {
      await queue.add('noop', { i });
      added++;
    }, o.timedOut);
  } else {
    for (let from = 0; from < n && !o.timedOut(); from += BULK_CHUNK) {
      const chunk = Array.from({ length: Math.min(BULK_CHUNK, n - from) }, (_, k) => ({ name: 'noop', data: { i: from + k } }));
      await queue.addBulk(chunk);
      added += chunk.length;
    }
  }
  const addSeconds = (Date.now() - t0) / 1000;
  let completed = 0;
  for (;;) {
    completed = await queue.getCompletedCount();
    o.progress(`${what}: ${added} added, ${completed} completed`);
    if (completed >= added || o.timedOut()) break;
    await delay(50);
  }
  // Completed jobs are scored by their finishedOn (the worker's clock, which is this machine's).
  const last = (await queue.getCompleted(0, 0))[0]?.finishedOn ?? Date.now();
  return { t0, completed, addSeconds, last };
}

/** Not measured: loads Redis's scripts and warms the client and the worker process up, as GRID's
 * latency scenario has warmed its controller and executors by the time throughput runs. */
async function warmUp(o: PeerOptions, mode: Mode, redis: RedisServer, workers: WorkerProcess): Promise<void> {
  const name = 'bench-warm-up';
  const { queue } = newQueue(name, redis);
  try {
    await queue.waitUntilReady();
    await workers.run(name);
    await addAndDrain(o, queue, 'single', WARM_UP_JOBS, `BullMQ ${mode.label}, warm-up`);
  } finally {
    await workers.close().catch(() => {});
    await queue.close();
  }
}

async function throughput(o: PeerOptions, mode: Mode, redis: RedisServer, workers: WorkerProcess, how: 'single' | 'bulk', setup: string): Promise<number | null> {
  const name = `bench-${how}`;
  const { queue, errors } = newQueue(name, redis);
  try {
    await queue.waitUntilReady();
    await workers.run(name);
    const n = o.jobs;
    const cpu0 = { redis: cpuSeconds(redis.pid), workers: cpuSeconds(workers.pid), self: process.cpuUsage() };
    const { t0, completed, addSeconds, last } = await addAndDrain(o, queue, how, n, `BullMQ ${mode.label}, ${how} adds`);
    const seconds = Math.max(0.001, (last - t0) / 1000);
    const jobs = Math.max(1, completed);
    const self = process.cpuUsage(cpu0.self);
    const cpuMs = {
      redis: ((cpuSeconds(redis.pid) - cpu0.redis) * 1000) / jobs,
      workers: ((cpuSeconds(workers.pid) - cpu0.workers) * 1000) / jobs,
      'bench client': (self.user + self.system) / 1000 / jobs,
    };
    const failed = await queue.getFailedCount();
    const rate = completed / seconds;
    const partial = completed >= n ? '' : `did not finish: ${completed} of ${n} completed in the time limit; `;
    const cpuText = `${Object.values(cpuMs).reduce((a, b) => a + b, 0).toFixed(2)} (${Object.entries(cpuMs).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')})`;
    const pattern = how === 'single' ? `${o.inFlight} Queue.add in flight` : `Queue.addBulk in chunks of ${BULK_CHUNK.toLocaleString('en-US')}, one chunk at a time`;
    o.row({
      figure: `BullMQ ${how === 'single' ? 'add' : 'addBulk'} → completed, ${mode.label}`,
      value: rate,
      unit: 'jobs/s',
      target: '(peer)',
      met: null,
      baseline: null,
      baselineUnit: '',
      ratio: null,
      note: `${partial}${n} jobs, ${pattern}; first add → last completed ${seconds.toFixed(2)} s (adds alone ${addSeconds.toFixed(2)} s); ${setup}; CPU ms per job ${cpuText}; ${failed} failed${errors() ? `; queue error: ${errors()}` : ''}`,
    });
    return partial ? null : rate;
  } finally {
    await workers.close().catch(() => {});
    await queue.close();
  }
}

async function roundTrips(o: PeerOptions, mode: Mode, redis: RedisServer, workers: WorkerProcess, setup: string): Promise<{ p50: number; p99: number } | null> {
  const name = 'bench-rt';
  const { queue, errors } = newQueue(name, redis);
  const events = new QueueEvents(name, { connection: redis.connection });
  events.on('error', () => {});
  try {
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    await workers.run(name);
    const n = o.roundTrips;
    const samples: number[] = [];
    for (let i = 0; i < n + WARM_UP && !o.timedOut(); i++) {
      const t0 = now();
      const job = await queue.add('noop', { i });
      await job.waitUntilFinished(events, 30_000);
      if (i >= WARM_UP) samples.push(now() - t0);
      o.progress(`BullMQ ${mode.label}: ${samples.length}/${n} round trips`);
    }
    samples.sort((a, b) => a - b);
    const p50 = percentile(samples, 50);
    const p99 = percentile(samples, 99);
    const partial = samples.length >= n ? '' : `did not finish: ${samples.length} of ${n} round trips in the time limit; `;
    const note = `${partial}${samples.length} jobs one at a time (after ${WARM_UP} not counted), Queue.add → Job.waitUntilFinished (QueueEvents); p90 ${percentile(samples, 90).toFixed(2)} ms, max ${(samples.at(-1) ?? NaN).toFixed(2)} ms; ${setup}${errors() ? `; queue error: ${errors()}` : ''}`;
    const common = { unit: 'ms', target: '(peer)', met: null, baseline: null, baselineUnit: '', ratio: null };
    o.row({ figure: `BullMQ add → completed p50, ${mode.label}`, value: samples.length ? p50 : null, ...common, note });
    o.row({ figure: `BullMQ add → completed p99, ${mode.label}`, value: samples.length ? p99 : null, ...common, note: '' });
    return partial ? null : { p50, p99 };
  } finally {
    await workers.close().catch(() => {});
    await events.close();
    await queue.close();
  }
}

// ---- GRID ÷ BullMQ ----

function gridRatios(o: PeerOptions, grid: readonly GridRow[], m: Partial<Record<Mode['key'], Measured>>): void {
  const durable = m.durable;
  const off = m.off;
  // The throughput scenario's row with GRID's executors as the peer's workers (4 × 16), else its first.
  const tpRows = grid.filter((r) => r.scenario === 'throughput' && r.unit === 'exec/s');
  const tp = tpRows.find((r) => r.note.includes(`${o.workers} executors × ${o.concurrency}`)) ?? tpRows[0];
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null && Number.isFinite(a) && b > 0 ? a / b : null);
  const x = (r: number | null) => (r === null ? '—' : `${r.toFixed(2)}×`);
  const figure = (r: GridRow | undefined) => (r?.value != null && Number.isFinite(r.value) ? r.value : null);
  const gridTp = figure(tp);
  const gridPartial = tp?.note.startsWith('did not finish') ?? false;
  const tpRatio = ratio(gridTp, durable?.single);
  const missing = !tp ? 'no GRID throughput figure in this run (run the throughput scenario too); ' : '';
  const noPeer = durable?.single == null ? 'no complete BullMQ durable single-add figure; ' : '';
  o.row({
    figure: 'GRID ÷ BullMQ throughput (vs AOF fsync always, single adds)',
    value: gridTp,
    unit: 'exec/s',
    target: `≥ ${TARGET_RATIO}× BullMQ`,
    met: tpRatio === null ? null : !gridPartial && tpRatio >= TARGET_RATIO,
    baseline: durable?.single ?? null,
    baselineUnit: 'jobs/s',
    ratio: tpRatio,
    note:
      `${missing}${noPeer}${gridPartial ? 'the GRID figure did not finish; ' : ''}GRID: ${tp ? `throughput / ${tp.figure}` : '—'}, etcd fsyncing every commit; BullMQ with the same submission pattern and workers. ` +
      `GRID ÷ BullMQ: single adds ${x(tpRatio)} durable, ${x(ratio(gridTp, off?.single))} persistence off; addBulk ×${BULK_CHUNK} ${x(ratio(gridTp, durable?.bulk))} durable, ${x(ratio(gridTp, off?.bulk))} persistence off`,
  });
  const latency = (p: 'p50' | 'p99') => grid.find((r) => r.scenario === 'latency' && r.unit === 'ms' && r.figure.endsWith(p));
  // The latency scenario's note (on its p50 row) says when it did not finish.
  const latPartial = latency('p50')?.note.startsWith('did not finish') ? 'the GRID figure did not finish (fewer samples); ' : '';
  for (const p of ['p50', 'p99'] as const) {
    const lat = latency(p);
    const gridMs = figure(lat);
    o.row({
      figure: `GRID ÷ BullMQ round trip ${p} (vs AOF fsync always)`,
      value: gridMs,
      unit: 'ms',
      target: '(info)',
      met: null,
      baseline: durable?.[p] ?? null,
      baselineUnit: 'ms',
      ratio: ratio(gridMs, durable?.[p]),
      note:
        `${lat ? latPartial : 'no GRID latency figure in this run (run the latency scenario too); '}GRID: latency / ${lat?.figure ?? '—'}; BullMQ: add → waitUntilFinished; ratio > 1: GRID is slower` +
        `; vs persistence off ${x(ratio(gridMs, off?.[p]))}`,
    });
  }
}

function versionOf(): string {
  let redis = '?';
  try {
    redis = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 5_000 }))?.[1] ?? '?';
  } catch {
    // reported by startRedis
  }
  const bullmq = (createRequire(import.meta.url)('bullmq/package.json') as { version: string }).version;
  return `BullMQ ${bullmq} on Redis ${redis}`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--bullmq-workers') {
  await workerMain(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
}
