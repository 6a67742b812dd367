// `make dev` stopped by signals to its whole process group (what `kill %1`, `timeout` and a
// terminal do), ten times in a row on the same data dir: each time, the controller stops its
// nats-server, etcd and local executor before it exits, and nothing of that run is left.
//
// How it goes wrong without care: one SIGTERM to the group reaches the controller twice, since
// make passes it on to its child (and `timeout` signals the child, then the group). A controller
// that took the second copy for "exit now" left nats-server and etcd running. Some rounds run
// the controller under a real `make`, others send the copies themselves; some signal while it is
// still starting (its servers up, its executor registering), some signal again while it stops.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { processAlive, processesMentioning } from '../harness/proc.js';
import { childEnv, cleanupProcesses, programPath, tempDir } from '../harness/processes.js';

afterAll(cleanupProcesses);

/** `make`: under a Makefile whose recipe runs the controller, as `make dev` does; else the controller alone. */
type Launch = 'make' | 'node';
/**
 * When to signal: once it is up; once its executor takes work too (so its stop takes a second
 * or two: the executor drains); once its servers are up (still starting); or while its executor registers.
 */
type When = 'ready' | 'executor-up' | 'servers-up' | 'registering';

interface Round {
  launch: Launch;
  when: When;
  /** Milliseconds to wait before each SIGTERM to the group (the first counted from `when`). */
  gaps: number[];
}

const ROUNDS: Round[] = [
  { launch: 'make', when: 'ready', gaps: [0] }, // make passes the group's SIGTERM on: two arrive
  { launch: 'node', when: 'ready', gaps: [0] },
  { launch: 'node', when: 'ready', gaps: [0, 0] }, // both copies sent at once, as timeout does
  { launch: 'make', when: 'executor-up', gaps: [0, 1200] }, // and again while it stops: now it hurries
  { launch: 'node', when: 'servers-up', gaps: [0, 0] },
  { launch: 'make', when: 'ready', gaps: [0] },
  { launch: 'node', when: 'executor-up', gaps: [0, 200, 200, 200, 200, 200, 200] },
  { launch: 'node', when: 'registering', gaps: [0, 0] },
  { launch: 'make', when: 'servers-up', gaps: [0] },
  { launch: 'node', when: 'ready', gaps: [0, 0] },
];

const READY: Record<When, RegExp> = {
  ready: /GRID is up/,
  'executor-up': /executor\.worker: taking work/,
  'servers-up': /embedded servers up/,
  registering: /executor (re-)?registered/,
};

describe('controller dev stopped by signals to its process group', () => {
  it('stops its servers and its local executor before it exits, ten times in a row on one data dir', async () => {
    const dataDir = join(tempDir(), 'grid');
    for (const [i, round] of ROUNDS.entries()) await stopRound(dataDir, `round ${i + 1}`, round, 'SIGTERM');
  }, 600_000);

  it('does the same for Ctrl-C twice and for a closed terminal (SIGINT, SIGHUP)', async () => {
    const dataDir = join(tempDir(), 'grid');
    await stopRound(dataDir, 'SIGINT', { launch: 'make', when: 'executor-up', gaps: [0, 1200] }, 'SIGINT');
    await stopRound(dataDir, 'SIGHUP', { launch: 'node', when: 'ready', gaps: [0] }, 'SIGHUP');
  }, 180_000);
});

async function stopRound(dataDir: string, label: string, round: Round, signal: NodeJS.Signals): Promise<void> {
  const run = launch(dataDir, round.launch);
  try {
    await run.waitFor(READY[round.when], 90_000);
    const running = processesMentioning(dataDir);
    // The controller, at least one server, and (once up) the executor: the scan sees this run.
    expect(running.length, `${label}: ${listed(running)}`).toBeGreaterThanOrEqual(round.when === 'ready' || round.when === 'executor-up' ? 4 : 2);
    for (const gap of round.gaps) {
      await sleep(gap);
      signalGroup(run.child.pid!, signal);
    }
    const code = await run.exited(90_000);
    const left = processesMentioning(dataDir);
    const context = `${label} (${round.launch}, at ${round.when}, ${round.gaps.length}× ${signal}; exit ${code}); left: ${listed(left)}\nbefore: ${listed(running)}\noutput:\n${run.output().slice(-4000)}`;
    expect(left, context).toEqual([]);
    for (const p of running) expect(processAlive(p.pid), `${context}\npid ${p.pid}`).toBe(false);
    expect(groupGone(run.child.pid!), context).toBe(true);
  } finally {
    if (run.child.exitCode === null && run.child.signalCode === null) signalGroup(run.child.pid!, 'SIGKILL');
    for (const p of processesMentioning(dataDir)) signalPid(p.pid, 'SIGKILL'); // after a failure: clean up for the next test
  }
}

interface Launched {
  child: ChildProcess;
  output(): string;
  waitFor(line: RegExp, timeoutMs: number): Promise<void>;
  /** Resolves with the exit code (128 + n for a signal) once the group's leader has exited. */
  exited(timeoutMs: number): Promise<number>;
}

/** Starts `controller dev` on `dataDir`, alone or under make, leading a process group of its own. */
function launch(dataDir: string, how: Launch): Launched {
  const args = ['dev', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0'];
  let command: string;
  let argv: string[];
  if (how === 'make') {
    // Its path mentions the data dir, so the scan for leftovers sees make too.
    const dir = `${dataDir}-make`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Makefile'), `dev:\n\t${[process.execPath, programPath('controller'), ...args].join(' ')}\n`);
    command = 'make';
    argv = ['-s', '-f', join(dir, 'Makefile'), 'dev'];
  } else {
    command = process.execPath;
    argv = [programPath('controller'), ...args];
  }
  // The local executor checks the controller with the CA made under the data dir.
  const env = childEnv({ GRID_CA_FILE: join(dataDir, 'tls', 'ca.crt') });
  const child = spawn(command, argv, { env, cwd: env.HOME, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exit = new Promise<number>((resolve) => child.once('exit', (code, sig) => resolve(code ?? 128 + (sig ? signalNumber(sig) : 0))));
  return {
    child,
    output: () => out,
    waitFor: async (line, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (!line.test(out)) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited before ${line}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`no ${line} within ${timeoutMs} ms:\n${out}`);
        await sleep(20);
      }
    },
    exited: async (timeoutMs) => {
      const code = await Promise.race([exit, sleep(timeoutMs, 'timeout' as const)]);
      if (code === 'timeout') throw new Error(`still running ${timeoutMs} ms after the signals:\n${out.slice(-4000)}`);
      return code;
    },
  };
}

function signalNumber(sig: NodeJS.Signals): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[sig] ?? 0;
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  signalPid(-pgid, sig);
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/** No live process is left in the group (members that are zombies awaiting their parent count as gone). */
function groupGone(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return true;
  }
  // Someone in the group still has a pid: alive only if it is not a zombie.
  return processesInGroup(pgid).every((pid) => !processAlive(pid));
}

function processesInGroup(pgid: number): number[] {
  const pids: number[] = [];
  for (const p of processesMentioning('')) {
    try {
      const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
      // Fields after the command: state, ppid, pgrp.
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp === pgid) pids.push(p.pid);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function listed(ps: Array<{ pid: number; argv: string[] }>): string {
  return ps.length === 0 ? 'none' : ps.map((p) => `${p.pid} ${p.argv.slice(0, 3).join(' ')}`).join('; ');
}
