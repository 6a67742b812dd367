// Micro-benchmark of the host runner alone: N `/bin/true` tasks through HostRunner at a fixed
// concurrency, beside two raw baselines measured in the same run (the machine is noisy, so the
// modes are interleaved round by round and the median of each is reported):
//
//   spawn          spawn('/bin/true', [], { stdio: 'ignore' }), what `make bench` compares with
//   spawn+detach   detached with piped stdout/stderr, read to their end: what the runner must do
//   runner         HostRunner.start() → wait(), with a sink that only counts bytes; tasks are
//                  forked by the runner's spawner process
//   runner-direct  the same with `spawner: false`: tasks are forked from this process
//
// fork() costs more the more memory the forking process has mapped; an executor holds far more
// than this script. --ballast MB fills that much memory first, to measure at an executor's size.
//
// node dist/test/bench/host-micro.js [--n 1000] [--concurrency 8] [--rounds 3] [--ballast 0] [--only runner]

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { JobDefinition } from '../../src/domain/job.js';
import { HostRunner } from '../../src/runners/host/index.js';
import type { LogSink, LogStream, TaskSpec } from '../../src/runners/runner.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    ballast: { type: 'string', default: '0' },
  },
});
const N = Number(values.n);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
/** Memory held (and touched) for the whole run, so that it is mapped when fork() copies the page tables. */
const ballast = Array.from({ length: Number(values.ballast) }, () => Buffer.alloc(1024 * 1024, 1));

class CountingSink implements LogSink {
  bytes = 0;
  write(_stream: LogStream, data: Uint8Array): void {
    this.bytes += data.length;
  }
}

/**
 * Runs `one` N times, CONCURRENCY at a time; returns the rate per second and this process's CPU
 * time (user + system) per task in µs, which the other load on the machine disturbs less.
 */
async function measure(one: (i: number) => Promise<void>): Promise<{ rate: number; cpuUs: number }> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const lane = async (): Promise<void> => {
    while (next < N) await one(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  const cpu = process.cpuUsage(cpu0);
  return { rate: N / (Number(process.hrtime.bigint() - t0) / 1e9), cpuUs: (cpu.user + cpu.system) / N };
}

function plainSpawn(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
}

/** Detached with pipes: resolves once the process has exited and both pipes have closed. */
function detachedSpawn(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let open = 3;
    const done = (): void => void (--open === 0 && resolve());
    child.once('error', reject);
    child.once('exit', done);
    child.stdout.on('data', () => {}).once('close', done);
    child.stderr.on('data', () => {}).once('close', done);
  });
}

const definition: JobDefinition = {
  name: 'micro',
  description: '',
  authorized_groups: [],
  env_vars: { secrets: [], args: [] },
  runner: 'host',
  files: [],
  command: ['/bin/true'],
};

function taskSpec(i: number): TaskSpec {
  return {
    executionId: `01JMICRO${String(i).padStart(8, '0')}`,
    executorId: 'X1',
    executorName: 'micro',
    attempt: 1,
    definition,
    args: {},
    secrets: {},
    env: {},
    timeoutMs: 0,
  };
}

async function main(): Promise<void> {
  const workRoot = mkdtempSync(join(tmpdir(), 'grid-host-micro-'));
  const runner = new HostRunner({ workRoot });
  const direct = new HostRunner({ workRoot, spawner: false });
  const signal = new AbortController().signal;
  let failures = 0;
  const via = (r: HostRunner) => async (i: number): Promise<void> => {
    const task = await r.start(taskSpec(i), new CountingSink(), signal);
    if ((await task.wait()).outcome !== 'succeeded') failures++;
  };

  const modes: Array<[string, (i: number) => Promise<void>]> = [
    ['spawn', plainSpawn],
    ['spawn+detach', detachedSpawn],
    ['runner', via(runner)],
    ['runner-direct', via(direct)],
  ];
  const selected = modes.filter(([name]) => !values.only || values.only.split(',').includes(name));
  const rates = new Map<string, number[]>(selected.map(([name]) => [name, []]));
  const cpus = new Map<string, number[]>(selected.map(([name]) => [name, []]));

  try {
    // Warm-up: JIT, the work root's inode, the fs thread pool.
    for (const [, one] of selected) for (let i = 0; i < 50; i++) await one(i);
    for (let r = 0; r < ROUNDS; r++) {
      const line: string[] = [];
      for (const [name, one] of selected) {
        const { rate, cpuUs } = await measure(one);
        rates.get(name)!.push(rate);
        cpus.get(name)!.push(cpuUs);
        line.push(`${name} ${rate.toFixed(0)}/s ${cpuUs.toFixed(0)}µs`);
      }
      console.log(`round ${r + 1}: ${line.join('  ')}`);
    }
    if (failures) console.log(`runner: ${failures} task(s) did not succeed`);
    const leftover = readdirSync(workRoot).length;
    if (leftover) console.log(`runner: ${leftover} working director(ies) left behind`);
  } finally {
    await runner.close();
    rmSync(workRoot, { recursive: true, force: true });
  }

  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`\nmedian of ${ROUNDS} round(s), N=${N}, concurrency ${CONCURRENCY}, RSS ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MB (ballast ${ballast.length} MB):`);
  for (const [name] of selected) {
    const rate = med(rates.get(name)!).toFixed(0).padStart(6);
    console.log(`  ${name.padEnd(13)} ${rate}/s  ${med(cpus.get(name)!).toFixed(0).padStart(5)} µs CPU/task (this process)`);
  }
  for (const mode of ['runner', 'runner-direct']) {
    const r = rates.get(mode);
    if (!r) continue;
    for (const base of ['spawn', 'spawn+detach']) {
      const b = rates.get(base);
      if (b) console.log(`  ${mode} / ${base.padEnd(13)} ${(med(r) / med(b)).toFixed(2)}`);
    }
  }
}

await main();
