// etcd leases: for executor liveness, a few long-lived keep-alive streams shared by all
// executors (opening a stream per heartbeat would cost a round trip and a stream each), on which
// the keep-alives of heartbeats that arrive close together go out together; for entries that
// only have to lapse after a while (idempotency keys), one lease per time bucket.
//
// Why several streams: etcd answers the keep-alives of one stream one after another, and on the
// leader each waits until etcd has applied what it had committed when the keep-alive arrived
// (so a lease granted a moment ago is found). While the store takes writes without pause (a
// fleet registering), that makes each keep-alive wait for a write to apply, and one stream
// falls behind 10,000 executors' heartbeats. Keep-alives on separate streams wait in parallel.

import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { UnavailableError } from '../errors.js';
import type { Kv } from './kv.js';
import type { LeaseStore } from './store.js';

const KEEPALIVE_TIMEOUT_MS = 5_000;
/** How long a keep-alive may wait for others to go out with (see KeepAliveStream.queue()). */
const BATCH_MS = 25;
/** Keep-alive streams per controller; a lease always goes on the same one. */
const STREAMS = 8;

type Pending = { resolve: (ttl: number) => void; reject: (err: Error) => void };
type Stream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

export class Leases implements LeaseStore {
  private readonly streams: KeepAliveStream[];

  constructor(private readonly kv: Kv, streams = STREAMS, timeoutMs = KEEPALIVE_TIMEOUT_MS) {
    this.streams = Array.from({ length: streams }, () => new KeepAliveStream(kv, timeoutMs));
  }

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

  /**
   * Refreshes the lease; resolves to its new TTL in seconds, or 0 if it no longer exists.
   * Rejects (UnavailableError) when etcd did not answer in time: the lease may well still be
   * there, so that is not a 0.
   */
  keepAlive(id: string): Promise<number> {
    return this.streams[streamOf(id, this.streams.length)]!.keepAlive(id);
  }

  close(): void {
    for (const s of this.streams) s.close();
  }
}

/** The stream a lease's keep-alives go on: its ID's low digits, so the spread is even. */
function streamOf(id: string, n: number): number {
  return Number(id.slice(-6)) % n || 0;
}

/** One keep-alive stream: answers are matched to callers by lease ID, in order per lease. */
class KeepAliveStream {
  private stream?: Promise<Stream>;
  /** The stream once open (undefined again when it fails), for the batches to go out on. */
  private current?: Stream;
  /** Callers waiting for an answer from `current`, per lease, in the order their keep-alives went out. */
  private pending = new Map<string, Pending[]>();
  /** Keep-alives not yet sent, per lease: a second heartbeat before the send joins the first. */
  private batch = new Map<string, Pending[]>();
  private flushing?: NodeJS.Timeout;
  /** When `current` opened or last answered. */
  private heardAt = 0;

  constructor(
    private readonly kv: Kv,
    private readonly timeoutMs: number,
  ) {}

  async keepAlive(id: string): Promise<number> {
    // Opening the stream is bounded too: an open that never completes (etcd3 waiting on a busy
    // connection) held every keep-alive of the stream, and the heartbeats queued behind them,
    // with no timer running; the next keep-alive tries a new one.
    const opening = this.open();
    let openTimer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (openTimer = setTimeout(() => resolve('late'), this.timeoutMs)));
    const opened = await Promise.race([opening, late]).finally(() => clearTimeout(openTimer));
    if (opened === 'late') {
      if (this.stream === opening) this.stream = undefined;
      throw new UnavailableError('etcd did not open a lease keep-alive stream in time');
    }
    return new Promise<number>((resolve, reject) => {
      // A keep-alive not answered in time fails its caller (the heartbeat; the executor retries).
      // Its place in the lease's queue stays, so that its late answer is matched to it and goes
      // nowhere. The stream is given up (and every keep-alive waiting on it failed) only when it
      // has answered nothing at all for as long: one slow answer on a busy etcd must not fail the
      // heartbeats of every executor on the stream, whose retries would make etcd busier still.
      const timer = setTimeout(() => {
        entry.reject(new UnavailableError('etcd did not answer a lease keep-alive in time'));
        if (this.current && performance.now() - this.heardAt >= this.timeoutMs) {
          this.reset(new UnavailableError('etcd answered no lease keep-alive in time: the keep-alive stream stalled'));
        }
      }, this.timeoutMs);
      const entry: Pending = {
        resolve: (ttl) => (clearTimeout(timer), resolve(ttl)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      const waiting = this.batch.get(id);
      if (waiting) waiting.push(entry);
      else this.batch.set(id, [entry]);
      this.queue();
    });
  }

  /**
   * Keep-alives wait up to BATCH_MS and go out together: written in one tick, they leave in one
   * socket write, and etcd reads and answers them together, instead of a wake-up on each side
   * for every heartbeat. The lease then runs its TTL from up to BATCH_MS later than the
   * heartbeat: an expiry can come that much later, never earlier. Heartbeats of one lease in
   * the same batch share its one keep-alive, which is sent after each of them arrived.
   */
  private queue(): void {
    this.flushing ??= setTimeout(() => {
      this.flushing = undefined;
      const batch = this.batch;
      this.batch = new Map();
      const s = this.current;
      if (!s) {
        // The stream failed meanwhile (its failure rejected what was waiting; this is the rest).
        const err = new UnavailableError('the etcd lease keep-alive stream ended');
        for (const list of batch.values()) for (const p of list) p.reject(err);
        return;
      }
      for (const [id, list] of batch) {
        // One keep-alive for the lease; its answer goes to every caller that joined it.
        const shared: Pending = { resolve: (ttl) => list.forEach((p) => p.resolve(ttl)), reject: (err) => list.forEach((p) => p.reject(err)) };
        const inFlight = this.pending.get(id);
        if (inFlight) inFlight.push(shared);
        else this.pending.set(id, [shared]);
        s.write({ ID: id });
      }
    }, BATCH_MS);
  }

  private open(): Promise<Stream> {
    if (this.stream) return this.stream;
    const opening = this.kv.client.leaseClient.leaseKeepAlive().then((s) => {
      if (this.stream !== opening) {
        // Reset or closed while it opened.
        s.end();
        return s;
      }
      this.current = s;
      this.heardAt = performance.now();
      s.on('data', (res: ILeaseKeepAliveResponse) => {
        if (this.current !== s) return;
        this.heardAt = performance.now();
        const id = String(res.ID);
        const list = this.pending.get(id);
        const p = list?.shift();
        if (list && list.length === 0) this.pending.delete(id);
        p?.resolve(Math.max(0, Number(res.TTL)));
      });
      s.on('error', (err: Error) => this.current === s && this.reset(err));
      s.on('end', () => this.current === s && this.reset(new UnavailableError('the etcd lease keep-alive stream ended')));
      return s;
    });
    this.stream = opening;
    opening.catch(() => this.stream === opening && (this.stream = undefined));
    return opening;
  }

  /**
   * Gives up on the stream: every keep-alive sent on it and not answered fails, and the next
   * one opens a new stream. Ended on our side too, so a stalled stream does not linger.
   */
  private reset(err: Error): void {
    const s = this.current;
    this.stream = undefined;
    this.current = undefined;
    const pending = this.pending;
    this.pending = new Map();
    for (const list of pending.values()) for (const p of list) p.reject(err);
    // Its 'data', 'error' and 'end' handlers ignore it from now on.
    s?.end();
  }

  close(): void {
    clearTimeout(this.flushing);
    this.flushing = undefined;
    const err = new UnavailableError('the lease store is closed');
    for (const list of this.batch.values()) for (const p of list) p.reject(err);
    this.batch = new Map();
    // A stream still opening is ended when it opens (open() sees it is no longer wanted).
    this.reset(err);
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
