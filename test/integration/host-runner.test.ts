// The host runner against real processes: argv and env, exit codes, tagged output, process-group
// kill on timeout and cancel, working directories and files, and the spawner process that forks
// the tasks (its death, its absence). Behaviour only, no timings.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobDefinition } from '../../src/domain/job.js';
import { HostRunner } from '../../src/runners/host/index.js';
import { Spawner } from '../../src/runners/host/spawner.js';
import type { Logger } from '../../src/util/log.js';
import type { LogSink, LogStream, RunningTask, TaskSpec } from '../../src/runners/runner.js';

class Collect implements LogSink {
  chunks: Array<{ stream: LogStream; text: string }> = [];
  finished = 0;
  writesAfterFinish = 0;
  private waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  write(stream: LogStream, data: Uint8Array): void {
    if (this.finished) this.writesAfterFinish++;
    this.chunks.push({ stream, text: Buffer.from(data).toString('utf8') });
    this.waiters = this.waiters.filter((w) => (w.re.test(this.text()) ? (w.resolve(), false) : true));
  }
  finish(): void {
    this.finished++;
  }
  text(stream?: LogStream): string {
    return this.chunks.filter((c) => !stream || c.stream === stream).map((c) => c.text).join('');
  }
  /** Resolves once the output so far matches `re`. */
  until(re: RegExp): Promise<void> {
    if (re.test(this.text())) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ re, resolve }));
  }
}

let workRoot: string;
let runner: HostRunner;
let seq = 0;

beforeEach(async () => {
  workRoot = await mkdtemp(join(tmpdir(), 'grid-host-runner-'));
  runner = new HostRunner({ workRoot, killGraceMs: 300, batchMs: 10 });
});

afterEach(async () => {
  await runner.close();
  await rm(workRoot, { recursive: true, force: true });
});

function spec(def: Partial<JobDefinition>, more: Partial<TaskSpec> = {}): TaskSpec {
  const definition: JobDefinition = {
    name: 'test-job',
    description: '',
    authorized_groups: [],
    env_vars: { secrets: [], args: [] },
    runner: 'host',
    files: [],
    ...def,
  };
  seq++;
  return {
    executionId: `01JEXEC${seq}`,
    executorId: 'X1',
    executorName: 'node-1',
    attempt: 2,
    definition,
    args: {},
    secrets: {},
    env: {},
    timeoutMs: 0,
    ...more,
  };
}

async function run(s: TaskSpec, signal = new AbortController().signal) {
  const out = new Collect();
  const task = await runner.start(s, out, signal);
  const result = await task.wait();
  return { out, result };
}

/** Alive = exists and is not a zombie waiting to be reaped by whoever adopted it. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function pids(out: Collect): { leader: number; child: number } {
  const text = out.text('stdout');
  return { leader: Number(/leader (\d+)/.exec(text)![1]), child: Number(/child (\d+)/.exec(text)![1]) };
}

const TWO_SLEEPERS = 'sleep 100 & echo "child $!"; echo "leader $$"; sleep 100';

describe('HostRunner', () => {
  it('renders {{name}} per argv element, with no shell in between', async () => {
    const { out, result } = await run(
      spec({ command: ['printf', '[%s] [%s]\\n', 'hello {{ NAME }}', '{{MODE}}'] }, { args: { NAME: 'a b; echo injected', MODE: 'fast' } }),
    );
    expect(result).toEqual({ outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' });
    expect(out.text('stdout')).toBe('[hello a b; echo injected] [fast]\n');
  });

  it('never puts a secret into argv, even for a definition stored before that was refused', async () => {
    const secrets = { env_vars: { secrets: [{ name: 'TOKEN', description: '', required: false }], args: [] } };
    const marker = 'tok-in-argv-0451';
    const { out, result } = await run(spec({ command: ['echo', '{{TOKEN}}'], ...secrets }, { secrets: { TOKEN: marker } }));
    expect(result.outcome).toBe('failed');
    expect(result.reason).toBe('command[1]: {{TOKEN}} is a secret argument and would be visible in the process list; read it from the environment as $TOKEN');
    expect(out.text('stdout')).not.toContain(marker);
    // Declared but not given: still refused, not reported as an unknown name.
    expect((await run(spec({ command: ['echo', '{{TOKEN}}'], ...secrets }))).result.reason).toMatch(/^command\[1\]: \{\{TOKEN\}\} is a secret argument/);
  });

  it('refuses a restricted environment name the definition does not allow, and passes one it does', async () => {
    const refused = await run(spec({ command: ['true'] }, { args: { LD_PRELOAD: '/tmp/evil.so' } }));
    expect(refused.result.outcome).toBe('failed');
    expect(refused.result.reason).toMatch(/^argument "LD_PRELOAD" changes how the process loads or finds code/);
    const allowed = await run(spec({ command: ['sh', '-c', 'echo "$PATH"'], allow_env: ['PATH'] }, { args: { PATH: '/opt/tools/bin:/usr/bin:/bin' } }));
    expect(allowed.result.outcome).toBe('succeeded');
    expect(allowed.out.text('stdout')).toBe('/opt/tools/bin:/usr/bin:/bin\n');
  });

  it('passes args, secrets, spec.env, GRID_* and only allow-listed executor variables', async () => {
    process.env['GRID_TEST_SHOULD_NOT_LEAK'] = 'leaked';
    try {
      const { out, result } = await run(
        spec({ command: ['env'] }, { args: { REGION: 'eu-west' }, secrets: { API_KEY: 'k3y' }, env: { GRID_LOCK_TOKEN: '42' } }),
      );
      expect(result.outcome).toBe('succeeded');
      const env = new Map(out.text('stdout').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      expect(env.get('REGION')).toBe('eu-west');
      expect(env.get('API_KEY')).toBe('k3y');
      expect(env.get('GRID_LOCK_TOKEN')).toBe('42');
      expect(env.get('GRID_EXECUTION_ID')).toMatch(/^01JEXEC/);
      expect(env.get('GRID_EXECUTOR')).toBe('node-1');
      expect(env.get('GRID_ATTEMPT')).toBe('2');
      expect(env.get('PATH')).toBeTruthy();
      expect(env.has('GRID_TEST_SHOULD_NOT_LEAK')).toBe(false);
    } finally {
      delete process.env['GRID_TEST_SHOULD_NOT_LEAK'];
    }
  });

  it('reports a non-zero exit as failed with its code', async () => {
    const { result } = await run(spec({ command: ['sh', '-c', 'exit 3'] }));
    expect(result).toEqual({ outcome: 'failed', exitCode: 3, reason: 'exit code 3' });
  });

  it('reports death by signal', async () => {
    const { result } = await run(spec({ shell: 'kill -USR1 $$' }));
    expect(result).toMatchObject({ outcome: 'failed', reason: 'killed by SIGUSR1' });
  });

  it('tags stdout and stderr, and finishes the sink once after the last write', async () => {
    const { out, result } = await run(spec({ shell: 'echo out1; echo err1 >&2; echo out2' }));
    expect(result.outcome).toBe('succeeded');
    expect(out.text('stdout')).toBe('out1\nout2\n');
    expect(out.text('stderr')).toBe('err1\n');
    expect(out.finished).toBe(1);
    expect(out.writesAfterFinish).toBe(0);
  });

  it('streams output while the task runs', async () => {
    const out = new Collect();
    const task = await runner.start(spec({ shell: 'echo first; sleep 100' }), out, new AbortController().signal);
    await out.until(/first\n/);
    await task.stop('cancelled');
    expect((await task.wait()).outcome).toBe('cancelled');
  });

  it('on timeout kills the whole process group, leader and background child', async () => {
    const { out, result } = await run(spec({ shell: TWO_SLEEPERS }, { timeoutMs: 500 }));
    expect(result).toMatchObject({ outcome: 'timed_out', reason: 'timed out after 0.5s' });
    const { leader, child } = pids(out);
    expect(isAlive(leader)).toBe(false);
    expect(isAlive(child)).toBe(false);
    expect(out.text('system')).toContain('timed out after 0.5s; sent SIGTERM');
  });

  it('on abort cancels, and stop() resolves only once the group is gone', async () => {
    const ac = new AbortController();
    const out = new Collect();
    const task = await runner.start(spec({ shell: TWO_SLEEPERS }), out, ac.signal);
    await out.until(/leader \d+/);
    const { leader, child } = pids(out);
    expect(isAlive(child)).toBe(true);
    ac.abort();
    await task.stop('cancelled');
    expect(isAlive(leader)).toBe(false);
    expect(isAlive(child)).toBe(false);
    expect(await task.wait()).toMatchObject({ outcome: 'cancelled', reason: 'cancelled' });
  });

  it('escalates to SIGKILL when the group ignores SIGTERM', async () => {
    const out = new Collect();
    const task: RunningTask = await runner.start(spec({ shell: `trap "" TERM; ${TWO_SLEEPERS}` }), out, new AbortController().signal);
    await out.until(/leader \d+/);
    await task.stop('cancelled');
    const { leader, child } = pids(out);
    expect(isAlive(leader)).toBe(false);
    expect(isAlive(child)).toBe(false);
    expect(await task.wait()).toMatchObject({ outcome: 'cancelled', exitCode: 137 });
    expect(out.text('system')).toContain('sent SIGKILL');
  });

  it('stops what the command left running when it exits', async () => {
    const { out, result } = await run(spec({ shell: 'sleep 100 & echo "child $!"; echo "leader $$"' }));
    expect(result.outcome).toBe('succeeded');
    expect(isAlive(pids(out).child)).toBe(false);
  });

  it('runs in a fresh working directory under the work root and removes it afterwards', async () => {
    const s = spec({ command: ['pwd'] });
    const { out, result } = await run(s);
    expect(result.outcome).toBe('succeeded');
    const dir = out.text('stdout').trim();
    expect(dir.startsWith(`${workRoot}/${s.executionId}-2-`)).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(workRoot)).toEqual([]);
  });

  it('removes the working directory after a failure too', async () => {
    const { out, result } = await run(spec({ shell: 'pwd; exit 1' }));
    expect(result.outcome).toBe('failed');
    expect(existsSync(out.text('stdout').trim())).toBe(false);
  });

  it('removes a working directory the task left files and folders in', async () => {
    const { out, result } = await run(spec({ shell: 'mkdir -p a/b && echo x > a/b/f && touch top && pwd' }));
    expect(result.outcome).toBe('succeeded');
    expect(existsSync(out.text('stdout').trim())).toBe(false);
    expect(readdirSync(workRoot)).toEqual([]);
  });

  it('creates the work root when it is missing, also when it was removed between tasks', async () => {
    const root = join(workRoot, 'not', 'yet');
    runner = new HostRunner({ workRoot: root, killGraceMs: 300, batchMs: 10 });
    const first = await run(spec({ command: ['pwd'] }));
    expect(first.result.outcome).toBe('succeeded');
    expect(first.out.text('stdout').startsWith(`${root}/`)).toBe(true);
    expect(readdirSync(root)).toEqual([]);

    await rm(root, { recursive: true });
    const second = await run(spec({ command: ['pwd'] }));
    expect(second.result.outcome).toBe('succeeded');
    expect(second.out.text('stdout').startsWith(`${root}/`)).toBe(true);
    expect(readdirSync(root)).toEqual([]);
  });

  it('finishes when a process that left the group still holds its output open', async () => {
    // The daemon starts its own session, so it is no longer in the task's group and is not
    // stopped with it; the runner stops waiting for the pipes it holds after a while.
    const { out, result } = await run(spec({ shell: `setsid sh -c 'echo "daemon $$"; exec sleep 100' & echo before` }));
    const daemon = /daemon (\d+)/.exec(out.text('stdout'));
    if (daemon) process.kill(Number(daemon[1]), 'SIGKILL');
    expect(result).toEqual({ outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' });
    expect(out.text('stdout')).toContain('before\n');
    expect(out.finished).toBe(1);
    expect(readdirSync(workRoot)).toEqual([]);
  });

  it('places files with parents and modes', async () => {
    const files = [
      { path: 'conf/deep/app.conf', data: Buffer.from('key=value\n'), mode: 0o600 },
      { path: 'run.sh', data: Buffer.from('#!/bin/sh\necho script ran\n'), mode: 0o755 },
    ];
    const { out, result } = await run(spec({ shell: 'cat conf/deep/app.conf; stat -c %a conf/deep/app.conf; ./run.sh' }, { files }));
    expect(result.outcome).toBe('succeeded');
    expect(out.text('stdout')).toBe('key=value\n600\nscript ran\n');
  });

  it('refuses a file path that leaves the working directory', async () => {
    const files = [{ path: '../escape.txt', data: Buffer.from('x') }];
    const { result } = await run(spec({ command: ['true'] }, { files }));
    expect(result.outcome).toBe('failed');
    expect(result.reason).toContain('../escape.txt');
    expect(readdirSync(workRoot)).toEqual([]);
  });

  it('shell is opt-in, gets values only through the environment, and renders no templates', async () => {
    const { out, result } = await run(spec({ shell: 'echo "$NAME"; echo "{{NAME}}"' }, { args: { NAME: '$(echo injected)' } }));
    expect(result.outcome).toBe('succeeded');
    expect(out.text('stdout')).toBe('$(echo injected)\n{{NAME}}\n');
  });

  it('reports a missing program as failed, not as a crash', async () => {
    const { result } = await run(spec({ command: ['grid-no-such-command-xyz', 'arg'] }));
    expect(result).toEqual({ outcome: 'failed', reason: 'command not found: grid-no-such-command-xyz' });
    expect(readdirSync(workRoot)).toEqual([]);
  });

  it('reports an unknown template variable as failed', async () => {
    const { out, result } = await run(spec({ command: ['echo', '{{MISSING}}'] }));
    expect(result).toMatchObject({ outcome: 'failed', reason: 'unknown template variable {{MISSING}} in command' });
    expect(out.finished).toBe(1);
  });

  it('does not start a task whose signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    const { result } = await run(spec({ shell: 'echo should not run' }), ac.signal);
    expect(result.outcome).toBe('cancelled');
    expect(readdirSync(workRoot)).toEqual([]);
  });
});

/** A logger that keeps its warnings. */
function warnings(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (msg, fields) => void lines.push(`${msg} ${JSON.stringify(fields ?? {})}`),
    error: (msg, fields) => void lines.push(`${msg} ${JSON.stringify(fields ?? {})}`),
    named: () => log,
    with: () => log,
  };
  return { log, lines };
}

describe('HostRunner spawner', () => {
  it('forks tasks from the spawner process, not from the executor', async () => {
    const { out, result } = await run(spec({ shell: 'echo "parent $PPID"' }));
    expect(result.outcome).toBe('succeeded');
    const parent = Number(/parent (\d+)/.exec(out.text('stdout'))![1]);
    expect(parent).toBe(runner.spawner!.pid);
    expect(parent).not.toBe(process.pid);
  });

  it('with spawner: false forks tasks from this process', async () => {
    runner = new HostRunner({ workRoot, spawner: false });
    const { out } = await run(spec({ shell: 'echo "parent $PPID"' }));
    expect(Number(/parent (\d+)/.exec(out.text('stdout'))![1])).toBe(process.pid);
  });

  it('gives the task no descriptor it should not have: not the channel to the executor, nor another task\'s output', async () => {
    const fds = async (r: HostRunner): Promise<string[]> => {
      runner = r;
      const ac = new AbortController();
      const other = await r.start(spec({ shell: 'echo started; sleep 100' }), new Collect(), ac.signal);
      const { out } = await run(spec({ shell: 'ls /proc/$$/fd' }));
      ac.abort();
      await other.wait();
      return out.text('stdout').trim().split('\n').sort();
    };
    // What this process leaves open without close-on-exec is inherited either way.
    const direct = await fds(new HostRunner({ workRoot, spawner: false }));
    const throughSpawner = await fds(new HostRunner({ workRoot }));
    expect(throughSpawner).toEqual(direct);
  });

  it('hands over all of a large output, in order, with nothing read on the way', async () => {
    const { out, result } = await run(spec({ shell: 'seq 1 200000; echo done >&2' }));
    expect(result.outcome).toBe('succeeded');
    const lines = out.text('stdout').split('\n');
    expect(lines.length).toBe(200001);
    expect(lines[0]).toBe('1');
    expect(lines[199999]).toBe('200000');
    expect(out.text('stderr')).toBe('done\n');
  });

  it('cancel reaches the whole group of a task the spawner started', async () => {
    const ac = new AbortController();
    const out = new Collect();
    const task = await runner.start(spec({ shell: `echo "parent $PPID"; ${TWO_SLEEPERS}` }), out, ac.signal);
    await out.until(/leader \d+/);
    expect(Number(/parent (\d+)/.exec(out.text('stdout'))![1])).toBe(runner.spawner!.pid);
    const { leader, child } = pids(out);
    ac.abort();
    await task.stop('cancelled');
    expect(isAlive(leader)).toBe(false);
    expect(isAlive(child)).toBe(false);
    expect(await task.wait()).toMatchObject({ outcome: 'cancelled' });
  });

  it('when the spawner dies mid-task, the task is reported failed, its group stopped, and the next task runs', async () => {
    const { log, lines } = warnings();
    runner = new HostRunner({ workRoot, killGraceMs: 300, batchMs: 10, log });
    const out = new Collect();
    const task = await runner.start(spec({ shell: TWO_SLEEPERS }), out, new AbortController().signal);
    await out.until(/leader \d+/);
    const first = runner.spawner!.pid!;
    process.kill(first, 'SIGKILL');
    const result = await task.wait();
    expect(result.outcome).toBe('failed');
    expect(result.reason).toMatch(/^the spawner process exited \(SIGKILL\) while the task ran, so its exit status is unknown$/);
    expect(out.text('system')).toContain('sent SIGTERM to its process group');
    const { leader, child } = pids(out);
    expect(isAlive(leader)).toBe(false);
    expect(isAlive(child)).toBe(false);
    expect(lines.some((l) => l.startsWith('the spawner process exited'))).toBe(true);

    const next = await run(spec({ shell: 'echo "parent $PPID"' }));
    expect(next.result.outcome).toBe('succeeded');
    const parent = Number(/parent (\d+)/.exec(next.out.text('stdout'))![1]);
    expect(parent).toBe(runner.spawner!.pid);
    expect(parent).not.toBe(first);
    expect(readdirSync(workRoot)).toEqual([]);
  });

  it('close() stops the spawner', async () => {
    await run(spec({ command: ['true'] }));
    const pid = runner.spawner!.pid!;
    expect(isAlive(pid)).toBe(true);
    await runner.close();
    expect(isAlive(pid)).toBe(false);
  });

  it('a spawner that cannot start leaves the caller to spawn, and says why', async () => {
    const { log, lines } = warnings();
    const spawner = new Spawner(log, join(workRoot, 'missing.mjs'));
    expect(await spawner.spawn({ file: 'true', args: [], cwd: workRoot, env: {} })).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^the spawner process could not be started; tasks are spawned by the executor itself until it can be .*exited \(exit code 1\)/);
    await spawner.close();
  });
});
