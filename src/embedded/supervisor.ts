// Keeps one embedded server running: when it dies, it is started again (by the caller's start
// function: same ports, data dir and certificates) after a backoff that doubles from 0.5 s to 10 s
// and starts over once a run has lasted a while. Every death and restart is reported as an
// event; supervision never gives up, and stopping it first means nothing is restarted after.

import type { ChildExit } from './child.js';

/** What the supervisor needs of a running server. */
export interface SupervisedServer {
  pid: number;
  exited: Promise<ChildExit>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export interface RestartPolicy {
  /** Wait before the first restart; doubled for each further attempt. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** A run that lasted this long counts as healthy: the next death starts again at attempt 1. */
  stableAfterMs: number;
  /** More restart attempts than this within `flappingWindowMs` makes the events say `flapping`. */
  flappingRestarts: number;
  flappingWindowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 500,
  maxDelayMs: 10_000,
  stableAfterMs: 30_000,
  flappingRestarts: 5,
  flappingWindowMs: 60_000,
};

/**
 * `attempt` counts restart attempts since the server last ran stably (1 = first); `flapping` says
 * it keeps dying (more than flappingRestarts attempts in the window).
 */
export type SupervisionEvent<Name extends string = string> =
  | { type: 'exited'; server: Name; pid: number; code: number | null; signal: NodeJS.Signals | null; restartInMs: number; attempt: number; flapping: boolean }
  | { type: 'restarted'; server: Name; pid: number; attempt: number }
  | { type: 'restart-failed'; server: Name; error: Error; restartInMs: number; attempt: number; flapping: boolean };

export interface SupervisorOptions<S extends SupervisedServer, Name extends string> {
  name: Name;
  /** Starts the server again; may throw (the port is taken, it does not get ready…). */
  start: () => Promise<S>;
  /** Called with every new process before it is reported (e.g. to write its pid file). */
  onStarted?: (server: S) => void;
  onEvent?: (event: SupervisionEvent<Name>) => void;
  policy?: Partial<RestartPolicy>;
}

export class Supervisor<S extends SupervisedServer, Name extends string = string> {
  private current: S;
  private startedAtMs = Date.now();
  private attempt = 0;
  private readonly attemptsAtMs: number[] = [];
  private timer?: NodeJS.Timeout;
  private restarting?: Promise<void>;
  private halted = false;
  private stopping?: Promise<void>;
  private readonly policy: RestartPolicy;

  constructor(first: S, private readonly opts: SupervisorOptions<S, Name>) {
    this.policy = { ...DEFAULT_RESTART_POLICY, ...opts.policy };
    this.current = first;
    this.watch(first);
  }

  /** The process running now (a new one after each restart). */
  get server(): S {
    return this.current;
  }

  /**
   * Stops restarting: a pending restart is cancelled and one under way is waited for (its
   * server becomes `server`, to be stopped by the caller). The server itself keeps running.
   */
  async halt(): Promise<void> {
    this.halted = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.restarting;
  }

  /** Halts, then stops the server; a second call returns the first call's promise. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      await this.halt();
      await this.current.stop();
    })());
  }

  /** Halts, then kills the server at once (SIGKILL); also cuts a stop() under way short. */
  async kill(): Promise<void> {
    await this.halt();
    await this.current.kill();
  }

  private watch(server: S): void {
    this.startedAtMs = Date.now();
    void server.exited.then((exit) => {
      if (this.halted || server !== this.current) return;
      if (Date.now() - this.startedAtMs >= this.policy.stableAfterMs) this.attempt = 0;
      const { delayMs, flapping } = this.schedule();
      this.opts.onEvent?.({ type: 'exited', server: this.opts.name, pid: server.pid, code: exit.code, signal: exit.signal, restartInMs: delayMs, attempt: this.attempt, flapping });
    });
  }

  /** Counts the next attempt and arms its timer. */
  private schedule(): { delayMs: number; flapping: boolean } {
    this.attempt++;
    const now = Date.now();
    this.attemptsAtMs.push(now);
    while (this.attemptsAtMs.length > 0 && now - this.attemptsAtMs[0]! > this.policy.flappingWindowMs) this.attemptsAtMs.shift();
    const delayMs = Math.min(this.policy.initialDelayMs * 2 ** Math.min(this.attempt - 1, 30), this.policy.maxDelayMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.restarting = this.restart().finally(() => (this.restarting = undefined));
    }, delayMs);
    return { delayMs, flapping: this.attemptsAtMs.length > this.policy.flappingRestarts };
  }

  private async restart(): Promise<void> {
    const attempt = this.attempt;
    let server: S;
    try {
      server = await this.opts.start();
    } catch (err) {
      if (this.halted) return;
      const { delayMs, flapping } = this.schedule();
      this.opts.onEvent?.({ type: 'restart-failed', server: this.opts.name, error: err as Error, restartInMs: delayMs, attempt, flapping });
      return;
    }
    this.current = server;
    this.opts.onStarted?.(server);
    // Halted meanwhile: keep it as `server` (stop() stops it) but do not watch over it.
    if (this.halted) return;
    this.opts.onEvent?.({ type: 'restarted', server: this.opts.name, pid: server.pid, attempt });
    this.watch(server);
  }
}
