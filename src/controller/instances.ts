// Which controller processes are alive: each holds controllers/<instance> on an etcd lease for
// as long as it runs. A replica that accepts an execution sends its job messages itself, right
// after recording it; should it die in between, the others see its key gone and send them.

import type { Lease } from 'etcd3';
import type { Kv } from '../store/kv.js';
import { newId } from '../util/ids.js';
import type { Logger } from '../util/log.js';

const TTL_SECONDS = 10;
/** The first wait after a refused lease, doubled after each refusal up to the second. */
export const RETAKE_FIRST_MS = 1_000;
const RETAKE_MAX_MS = 10_000;

export class ControllerInstances {
  /** This process's instance id (new at every start). */
  readonly id = newId();
  private lease?: Lease;
  private stopped = false;
  /** A retake() loop is running. */
  private retaking = false;

  constructor(
    private readonly kv: Kv,
    private readonly log: Logger,
  ) {}

  private key(id: string): string {
    return this.kv.key('controllers', id);
  }

  async start(): Promise<void> {
    const lease = this.kv.client.lease(TTL_SECONDS);
    this.lease = lease;
    lease.on('lost', (err) => {
      if (this.stopped || this.lease !== lease || this.retaking) return;
      this.log.warn('lost the controller liveness lease; taking a new one', { error: err.message });
      this.retake();
    });
    await lease.put(this.key(this.id)).value(JSON.stringify({ started_at_ms: Date.now(), pid: process.pid }));
  }

  /**
   * Takes a new lease until one holds, waiting longer after each refusal (up to RETAKE_MAX_MS).
   * One loop at a time: a lease whose first put failed is lost too, and its 'lost' must not
   * start a second loop (each would start two more, and an etcd outage made thousands a second).
   */
  private retake(): void {
    this.retaking = true;
    let waitMs = RETAKE_FIRST_MS;
    const attempt = (): void => {
      if (this.stopped) return void (this.retaking = false);
      this.start().then(
        () => void (this.retaking = false),
        (e: Error) => {
          this.log.warn('could not take a controller liveness lease; retrying', { error: e.message, retry_in_ms: waitMs });
          setTimeout(attempt, waitMs).unref();
          waitMs = Math.min(waitMs * 2, RETAKE_MAX_MS);
        },
      );
    };
    attempt();
  }

  /** Instance ids of the controller processes alive now. */
  async live(): Promise<Set<string>> {
    const prefix = this.key('');
    const keys = await this.kv.client.getAll().prefix(prefix).keys();
    return new Set(keys.map((k) => k.slice(prefix.length)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.lease?.revoke().catch(() => {});
  }
}
