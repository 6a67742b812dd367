// `controller dev`: runs one local executor next to the controller, registered with the dev
// registration token, its output folded into the controller's. Stopped with the controller.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CancelledError } from '../errors.js';
import type { Level, Logger, LogFormat } from '../util/log.js';

const EXECUTOR_JS = fileURLToPath(new URL('../../cmd/executor.js', import.meta.url));

/** How long the executor may take to drain after SIGTERM before it is killed. */
const STOP_GRACE_MS = 35_000;

export interface LocalExecutorOptions {
  dataDir: string;
  controller: string;
  registrationToken: string;
  /** The CA to verify the controller with; undefined = plaintext gRPC. */
  caFile?: string;
  /** The controller's own, so the two write the same kind of lines. */
  logLevel: Level;
  logFormat: LogFormat;
  log: Logger;
}

/**
 * `executor register`, then `executor start`, each in a process group of its own: a signal to
 * the controller's group (Ctrl-C in a terminal, `kill` of make's group) reaches only the
 * controller, which stops the executor in order. stop() and kill() may be called at any point,
 * also while it is still starting: whatever runs then is ended, and nothing is started after.
 */
export class LocalExecutor {
  private child?: ChildProcess;
  private ended = false;
  private stopping?: Promise<void>;
  private readonly killOnExit = () => this.child?.kill('SIGKILL');

  constructor(private readonly opts: LocalExecutorOptions) {
    // The last resort, should the controller exit without stopping it.
    process.once('exit', this.killOnExit);
  }

  async start(): Promise<void> {
    const o = this.opts;
    const configFile = join(o.dataDir, 'executor.json');
    const name = `${hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-')}-local`.replace(/^[^a-z0-9]+/, 'x');
    await writeFile(
      configFile,
      JSON.stringify(
        {
          controller: o.controller,
          registration_token: o.registrationToken,
          name,
          groups: ['local'],
          runners: ['host'],
          state_file: join(o.dataDir, 'executor-state.json'),
          work_dir: join(o.dataDir, 'work'),
          ping_interval_seconds: 5,
          log_level: o.logLevel,
          log_format: o.logFormat,
          ...(o.caFile ? { ca_file: o.caFile } : { plaintext: true }),
        },
        null,
        2,
      ) + '\n',
      { mode: 0o600 },
    );
    const registered = await this.exitOf(this.spawn(['register', '--config', configFile]));
    if (this.ended) throw new CancelledError('the local executor was stopped while it registered');
    if (registered.code !== 0) {
      o.log.error('local executor registration failed', { code: registered.code, signal: registered.signal ?? undefined });
      throw new Error(`executor register exited with ${registered.signal ?? `code ${registered.code}`}`);
    }
    const child = this.spawn(['start', '--config', configFile]);
    o.log.info('local executor started', { name, pid: child.pid, config: configFile });
  }

  /** SIGTERM, then SIGKILL after a grace period; a second call returns the first call's promise. */
  stop(): Promise<void> {
    return (this.stopping ??= this.end('SIGTERM', STOP_GRACE_MS));
  }

  /** SIGKILL at once (cutting a stop() short); resolves when the process has exited. */
  kill(): Promise<void> {
    return this.end('SIGKILL', 0);
  }

  private spawn(args: string[]): ChildProcess {
    if (this.ended) throw new CancelledError('the local executor was stopped while it started');
    const child = spawn(process.execPath, [EXECUTOR_JS, ...args], { stdio: ['ignore', 'inherit', 'inherit'], detached: true, env: withoutGridVariables(process.env) });
    this.child = child;
    return child;
  }

  private async end(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    this.ended = true;
    const child = this.child;
    if (child && isRunning(child)) {
      const exited = this.exitOf(child);
      child.kill(signal);
      const force = graceMs > 0 ? setTimeout(() => child.kill('SIGKILL'), graceMs) : undefined;
      await exited;
      clearTimeout(force);
    }
    process.off('exit', this.killOnExit);
  }

  private exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!isRunning(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
    return new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: child.exitCode ?? -1, signal: child.signalCode }));
    });
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * The environment of the local executor: the controller's without GRID_* variables, which would
 * override the config file written for it (a GRID_CA_FILE of another GRID in the operator's
 * shell made it distrust this controller).
 */
export function withoutGridVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('GRID_')));
}
