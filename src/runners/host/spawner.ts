// The executor's side of the spawner (spawner.mjs), the small process that starts host tasks so
// that fork() is not paid from the executor: started on first use, kept alive, started again
// for the next task after it dies. When it cannot be started the runner spawns tasks itself, says
// why in a log line, and tries again a minute later.
//
// What still happens here: the task's output is read from the sockets the spawner connects to
// this process's private listening socket (each introduced by a one-time random token, in a
// directory only this user can enter), and its process group is signalled directly (stop,
// timeout, cancel). The spawner only forks, and reports the pid and the exit status.

import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../util/log.js';
import type { Exit, TaskProcess } from './process.js';

export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  uid?: number;
  gid?: number;
}

type Answer =
  | { t: 'ready' }
  | { t: 'started'; id: number; pid: number }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: 'error'; id: number; code: string; message: string };

/** A task asked for and not yet over; started() is called once the pid and both streams are here. */
interface Pending {
  tokens: [stdout: string, stderr: string];
  pid?: number;
  stdout?: Socket;
  stderr?: Socket;
  /** The exit, when it came before the streams. */
  exit?: Exit;
  started: (p: TaskProcess) => void;
  /** Set once started() has been called. */
  exited?: (e: Exit) => void;
}

const SCRIPT = fileURLToPath(new URL('./spawner.mjs', import.meta.url));
const READY_MS = 10_000;
const RETRY_MS = 60_000;
const CLOSE_MS = 2_000;
/** An introduction longer than a token and its newline is not one of ours. */
const TOKEN_BYTES = 16;

export class Spawner {
  private proc: ChildProcess | undefined;
  private starting: Promise<ChildProcess | undefined> | undefined;
  private retryAt = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Output streams still expected, by token → the task's id and which stream. */
  private readonly expected = new Map<string, { id: number; stream: 'stdout' | 'stderr' }>();
  private server: { server: Server; dir: string; path: string } | undefined;
  private closed = false;

  constructor(
    private readonly log?: Logger,
    private readonly script = SCRIPT,
  ) {}

  /** The spawner's pid while it runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /**
   * Starts a process through the spawner; resolves once its pid is known (or it failed to
   * start). Undefined when there is no spawner: the caller spawns the process itself.
   */
  async spawn(req: SpawnRequest): Promise<TaskProcess | undefined> {
    const proc = await this.ensure();
    if (!proc) return undefined;
    const id = this.nextId++;
    const tokens: Pending['tokens'] = [randomBytes(TOKEN_BYTES).toString('hex'), randomBytes(TOKEN_BYTES).toString('hex')];
    this.expected.set(tokens[0], { id, stream: 'stdout' });
    this.expected.set(tokens[1], { id, stream: 'stderr' });
    return new Promise<TaskProcess>((started) => {
      this.pending.set(id, { tokens, started });
      // While a task is out, the channel keeps the executor's event loop alive; not otherwise.
      if (this.pending.size === 1) proc.channel?.ref();
      proc.send({ t: 'spawn', id, ...req, stdout: tokens[0], stderr: tokens[1] }, (err) => {
        if (err) this.settle(id, `the spawner process could not be reached (${err.message})`);
      });
    });
  }

  /** Starts the spawner now rather than with the first task, which would wait for it. */
  warm(): void {
    void this.ensure();
  }

  /** Stops the spawner; the tasks it started are left alone. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.disconnect(); // it exits when its channel closes
      const timer = setTimeout(() => proc.kill('SIGKILL'), CLOSE_MS);
      await exited;
      clearTimeout(timer);
    }
    await this.starting;
    await this.unlisten();
  }

  private async unlisten(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.server.close();
      await rm(server.dir, { recursive: true, force: true });
    }
  }

  private ensure(): Promise<ChildProcess | undefined> {
    if (this.proc) return Promise.resolve(this.proc);
    if (this.closed || Date.now() < this.retryAt) return Promise.resolve(undefined);
    this.starting ??= this.launch().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async launch(): Promise<ChildProcess | undefined> {
    let proc: ChildProcess;
    try {
      this.server ??= await this.listen();
      // execArgv: none of the executor's own flags (--cpu-prof, heap size…); cwd "/" so that
      // it is never taken for a task working in the work directory.
      proc = fork(this.script, [this.server.path], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], cwd: '/', serialization: 'json' });
    } catch (err) {
      return this.unavailable((err as Error).message);
    }
    proc.on('error', (err) => this.log?.warn('spawner process error', { error: err.message }));
    const why = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(`it did not answer within ${READY_MS / 1000} s`), READY_MS);
      const done = (reason: string | undefined): void => {
        clearTimeout(timer);
        resolve(reason);
      };
      proc.once('message', (m: Answer) => done(m?.t === 'ready' ? undefined : `it answered ${JSON.stringify(m)}`));
      proc.once('error', (err) => done(err.message));
      proc.once('exit', (code, signal) => done(`it exited (${signal ?? `exit code ${code}`})`));
    });
    if (why) {
      proc.kill('SIGKILL');
      return this.unavailable(why);
    }
    if (this.closed) {
      // close() came while it was starting.
      proc.disconnect();
      await this.unlisten();
      return undefined;
    }
    proc.on('message', (m: Answer) => this.onAnswer(m));
    proc.once('exit', (code, signal) => this.onExit(proc, signal ?? `exit code ${code}`));
    proc.unref();
    proc.channel?.unref();
    this.proc = proc;
    return proc;
  }

  /** The listening socket the spawner connects task output to, in a new 0700 directory. */
  private async listen(): Promise<{ server: Server; dir: string; path: string }> {
    // Short: a socket path may not be longer than about 100 bytes.
    const dir = await mkdtemp(join(tmpdir(), 'grid-spawner-'));
    const path = join(dir, 's');
    const server = createServer((sock) => this.introduce(sock));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    server.unref();
    return { server, dir, path };
  }

  /** Reads a new connection's token and gives it to its task as stdout or stderr. */
  private introduce(sock: Socket): void {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > TOKEN_BYTES * 2) sock.destroy();
        return;
      }
      sock.off('data', onData);
      sock.pause();
      const token = head.subarray(0, nl).toString('latin1');
      const rest = head.subarray(nl + 1);
      const which = this.expected.get(token);
      const p = which && this.pending.get(which.id);
      if (!which || !p) {
        sock.destroy();
        return;
      }
      this.expected.delete(token);
      // Whatever the task wrote in the same read is its output.
      if (rest.length > 0) sock.unshift(rest);
      p[which.stream] = sock;
      this.ready(which.id, p);
    };
    sock.on('data', onData);
    sock.on('error', () => {}); // a reset connection only ends that output
  }

  /** Hands the task over once its pid and both output streams are here. */
  private ready(id: number, p: Pending): void {
    if (p.exited || p.pid === undefined || !p.stdout || !p.stderr) return;
    let exited!: (e: Exit) => void;
    const exit = new Promise<Exit>((resolve) => (exited = resolve));
    p.exited = exited;
    p.started({ pid: p.pid, stdout: p.stdout, stderr: p.stderr, exit });
    if (p.exit) {
      this.done(id);
      exited(p.exit);
    }
  }

  private unavailable(why: string): undefined {
    this.retryAt = Date.now() + RETRY_MS;
    this.log?.warn('the spawner process could not be started; tasks are spawned by the executor itself until it can be', {
      error: why,
      retry_in_s: RETRY_MS / 1000,
    });
    return undefined;
  }

  private onAnswer(m: Answer): void {
    if (m.t === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.t) {
      case 'started':
        p.pid = m.pid;
        this.ready(m.id, p);
        break;
      case 'exit':
        if (p.exited) {
          this.done(m.id);
          p.exited({ code: m.code, signal: m.signal });
        } else p.exit = { code: m.code, signal: m.signal }; // its streams are still on their way
        break;
      case 'error': {
        this.done(m.id);
        p.stdout?.destroy();
        p.stderr?.destroy();
        const error: NodeJS.ErrnoException = Object.assign(new Error(m.message), m.code ? { code: m.code } : {});
        p.started({ pid: undefined, stdout: null, stderr: null, exit: Promise.resolve({ code: null, signal: null, error }) });
        break;
      }
    }
  }

  private onExit(proc: ChildProcess, how: string): void {
    if (this.proc === proc) this.proc = undefined;
    if (!this.closed) {
      this.log?.warn('the spawner process exited; it is started again for the next task', { how, tasks_lost: this.pending.size });
    }
    for (const id of [...this.pending.keys()]) this.settle(id, `the spawner process exited (${how})`);
  }

  /**
   * Ends a task the spawner can no longer answer for: one that started is reported lost (its
   * group is still stopped by HostTask); one whose pid never came, as not started.
   */
  private settle(id: number, cause: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.done(id);
    const lost = `${cause} while the task ran, so its exit status is unknown`;
    if (p.exited) p.exited({ code: null, signal: null, lost });
    else if (p.pid !== undefined) {
      p.started({ pid: p.pid, stdout: p.stdout ?? null, stderr: p.stderr ?? null, exit: Promise.resolve({ code: null, signal: null, lost }) });
    } else {
      p.stdout?.destroy();
      p.stderr?.destroy();
      const error = new Error(`${cause} before it said whether the task started`);
      p.started({ pid: undefined, stdout: null, stderr: null, exit: Promise.resolve({ code: null, signal: null, error }) });
    }
  }

  private done(id: number): void {
    const p = this.pending.get(id);
    if (p) for (const token of p.tokens) this.expected.delete(token);
    this.pending.delete(id);
    if (this.pending.size === 0) this.proc?.channel?.unref();
  }
}
