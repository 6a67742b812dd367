// Whether this controller can serve: etcd and NATS both answer. Each is probed on its own every
// interval (BackendHealth's timed round trips); a probe that fails, or has not answered within
// the timeout, marks its backend down until a later one answers. The round trips go to the
// metrics, and listeners (the gRPC health service) hear each change. /readyz answers from the
// last probes, so serving it costs the backends nothing.

import type { Logger } from '../util/log.js';
import type { Backend } from './metrics.js';

export type { Backend } from './metrics.js';

const BACKENDS: readonly Backend[] = ['etcd', 'nats'];

export interface ReadinessStatus {
  ready: boolean;
  /** Whether each backend answered its last probe in time. */
  backends: Record<Backend, boolean>;
}

export interface ReadinessOptions {
  /** One round trip to each backend: seconds taken; throws when it does not answer. */
  probes: Record<Backend, () => Promise<number>>;
  log: Logger;
  /** How often each backend is probed (default 500 ms). */
  intervalMs?: number;
  /** A probe not answered by then counts as failed (default 1000 ms). */
  timeoutMs?: number;
  /** Each probe's outcome: its round trip in seconds, or undefined when it failed or timed out. */
  onProbe?: (backend: Backend, seconds: number | undefined) => void;
}

export class Readiness {
  private readonly up: Record<Backend, boolean> = { etcd: false, nats: false };
  /** A probe still out: no second one is sent beside it (one that hangs was marked down at its timeout). */
  private readonly pending: Partial<Record<Backend, Promise<unknown>>> = {};
  private readonly listeners = new Set<(ready: boolean) => void>();
  private readonly backendListeners = new Set<(backend: Backend, up: boolean) => void>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private last = false;
  private readonly probed = new Set<Backend>();

  constructor(private readonly o: ReadinessOptions) {}

  /** Probes once (so the state is known when this resolves), then every interval. */
  async start(): Promise<void> {
    await this.round();
    this.timer = setInterval(() => void this.round(), this.o.intervalMs ?? 500);
  }

  ready(): boolean {
    return !this.stopped && BACKENDS.every((b) => this.up[b]);
  }

  status(): ReadinessStatus {
    return { ready: this.ready(), backends: { ...this.up } };
  }

  /** Calls `fn` with the new readiness each time it changes; returns the way to stop. */
  onChange(fn: (ready: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Calls `fn` each time one backend stops or starts answering; returns the way to stop. */
  onBackendChange(fn: (backend: Backend, up: boolean) => void): () => void {
    this.backendListeners.add(fn);
    return () => this.backendListeners.delete(fn);
  }

  /** Not ready from now on (the controller is stopping); probes end. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.changed();
  }

  private async round(): Promise<void> {
    await Promise.all(BACKENDS.map((b) => this.probe(b)));
  }

  private async probe(b: Backend): Promise<void> {
    if (this.pending[b] || this.stopped) return;
    const timeoutMs = this.o.timeoutMs ?? 1000;
    const call = this.o.probes[b]();
    const settled = call.then(() => undefined, () => undefined);
    this.pending[b] = settled;
    void settled.then(() => delete this.pending[b]);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    try {
      const r = await Promise.race([call, timeout]);
      if (r === 'timeout') this.set(b, undefined, `no answer within ${timeoutMs} ms`);
      else this.set(b, r, '');
    } catch (err) {
      this.set(b, undefined, (err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  private set(b: Backend, seconds: number | undefined, error: string): void {
    if (this.stopped) return;
    this.o.onProbe?.(b, seconds);
    const up = seconds !== undefined;
    const first = !this.probed.has(b);
    this.probed.add(b);
    if (up === this.up[b] && !first) return;
    this.up[b] = up;
    if (!up) this.o.log.warn(`${b} is not answering: this controller is not ready`, { error });
    else if (!first) this.o.log.info(`${b} answers again`, { ready: this.ready() });
    if (!first || !up) for (const fn of this.backendListeners) fn(b, up);
    this.changed();
  }

  private changed(): void {
    const ready = this.ready();
    if (ready === this.last) return;
    this.last = ready;
    for (const fn of this.listeners) fn(ready);
  }
}
