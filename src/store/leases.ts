// etcd leases: for executor liveness, one long-lived keep-alive stream shared by all executors
// (opening a stream per heartbeat would cost a round trip and a stream each), on which the
// keep-alives of heartbeats that arrive close together go out together; for entries that
// only have to lapse after a while (idempotency keys), one lease per time bucket.

import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { UnavailableError } from '../errors.js';
import type { Kv } from './kv.js';
import type { LeaseStore } from './store.js';

const KEEPALIVE_TIMEOUT_MS = 5_000;
/** How long a keep-alive may wait for others to go out with (see queue()). */
const BATCH_MS = 25;

type Pending = { resolve: (ttl: number) => void; reject: (err: Error) => void };

export class Leases implements LeaseStore {
  private stream?: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>>;
  /** The stream once open (undefined again when it fails), for the batches to go out on. */
  private current?: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;
  private readonly pending = new Map<string, Pending[]>();
  private batch: string[] = [];
  private flushing?: NodeJS.Timeout;

  constructor(private readonly kv: Kv) {}

  async grant(ttlSeconds: number): Promise<string> {
    const res = await this.kv.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
    return String(res.ID);
  }

  async revoke(id: string): Promise<void> {
    try {
      await this.kv.client.leaseClient.leaseRevoke({ ID: id });
    } catch {
      // Already expired or revoked: that is the outcome we wanted.
    }
  }

  /** Refreshes the lease; resolves to its new TTL in seconds, or 0 if it no longer exists. */
  async keepAlive(id: string): Promise<number> {
    await this.open();
    return new Promise<number>((resolve, reject) => {
      // A stalled stream must not hold heartbeats forever: give up, and open a new one next time.
      const timer = setTimeout(() => {
        this.stream = undefined;
        this.current = undefined;
        const list = this.pending.get(id);
        const i = list?.indexOf(entry) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
        reject(new UnavailableError('etcd did not answer a lease keep-alive in time'));
      }, KEEPALIVE_TIMEOUT_MS);
      const entry: Pending = {
        resolve: (ttl) => (clearTimeout(timer), resolve(ttl)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      const list = this.pending.get(id) ?? [];
      list.push(entry);
      this.pending.set(id, list);
      this.queue(id);
    });
  }

  /**
   * Keep-alives wait up to BATCH_MS and go out together: written in one tick, they leave in one
   * socket write, and etcd reads and answers them together, instead of a wake-up on each side
   * for every heartbeat. The lease then runs its TTL from up to BATCH_MS later than the
   * heartbeat: an expiry can come that much later, never earlier.
   */
  private queue(id: string): void {
    this.batch.push(id);
    this.flushing ??= setTimeout(() => {
      this.flushing = undefined;
      const ids = this.batch;
      this.batch = [];
      const s = this.current;
      if (s) for (const i of ids) s.write({ ID: i });
      else {
        // The stream failed meanwhile (its failure rejected what was waiting; this is the rest).
        for (const i of ids) {
          const list = this.pending.get(i) ?? [];
          this.pending.delete(i);
          for (const p of list) p.reject(new UnavailableError('the etcd lease keep-alive stream ended'));
        }
      }
    }, BATCH_MS);
  }

  private open(): Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> {
    this.stream ??= this.kv.client.leaseClient.leaseKeepAlive().then((s) => {
      this.current = s;
      s.on('data', (res: ILeaseKeepAliveResponse) => {
        const id = String(res.ID);
        const list = this.pending.get(id);
        const p = list?.shift();
        if (list && list.length === 0) this.pending.delete(id);
        p?.resolve(Math.max(0, Number(res.TTL)));
      });
      const fail = (err: Error) => {
        this.stream = undefined;
        if (this.current === s) this.current = undefined;
        for (const list of this.pending.values()) for (const p of list) p.reject(err);
        this.pending.clear();
      };
      s.on('error', fail);
      s.on('end', () => fail(new Error('etcd lease keep-alive stream ended')));
      return s;
    });
    this.stream.catch(() => (this.stream = undefined));
    return this.stream;
  }

  close(): void {
    clearTimeout(this.flushing);
    this.flushing = undefined;
    void this.stream?.then((s) => s.end()).catch(() => {});
    this.stream = undefined;
    this.current = undefined;
  }
}

/**
 * One lease per time bucket for entries that must live at least `lifeMs` and then go: the lease
 * of bucket [B, B + bucketMs) is granted at its first use, at B or later, with a TTL of
 * lifeMs + bucketMs, so every entry put on it during the bucket lives between lifeMs and
 * lifeMs + bucketMs. One lease an hour instead of one per entry; nothing keeps them alive.
 */
export class BucketLeases {
  private cur?: { bucket: number; id: Promise<string> };

  constructor(
    private readonly grant: (ttlSeconds: number) => Promise<string>,
    private readonly o: { lifeMs: number; bucketMs: number; now: () => number },
  ) {}

  /** The lease of the current bucket, granted now if it has none yet. */
  current(): Promise<string> {
    const bucket = Math.floor(this.o.now() / this.o.bucketMs);
    if (this.cur?.bucket !== bucket) {
      const id = this.grant(Math.ceil((this.o.lifeMs + this.o.bucketMs) / 1000));
      const cur = { bucket, id };
      this.cur = cur;
      // A failed grant is not kept: the next call asks again.
      id.catch(() => this.cur === cur && (this.cur = undefined));
    }
    return this.cur.id;
  }

  /** etcd no longer has lease `id` (revoked, or lost with a restore): the next call grants another. */
  async forget(id: string): Promise<void> {
    const cur = this.cur;
    if (cur && (await cur.id.catch(() => '')) === id && this.cur === cur) this.cur = undefined;
  }
}
