// Fleet-wide locks for serialized jobs, in the NATS KV bucket `grid-locks`:
//   lock.<name>           the holder; created only if absent; its revision is the fencing token
//   q.<name>.<ticket>     one entry per waiting task; tickets sort in submission order
//                         (ticket = <execution id>.<task key>, execution ids are time-ordered)
// The bucket's max age is the lock TTL: a holder or waiter that dies stops refreshing its entry,
// which then expires, so a dead executor never blocks the fleet for longer than the TTL.

import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import { setTimeout as delay } from 'node:timers/promises';
import { BUCKETS } from '../bus/subjects.js';
import type { Logger } from '../util/log.js';

const POLL_MS = 200;

export interface HeldLock {
  /** The fencing token: strictly increasing across holders of the whole bucket. */
  token: number;
  /** Set when a refresh found the lock taken by someone else (this holder had expired). */
  lost: boolean;
  release(): Promise<void>;
}

export interface AcquireOptions {
  name: string;
  ticket: string;
  holder: string;
  signal: AbortSignal;
  /** Called once, when the task has to wait, with how many tasks are ahead of it. */
  onWaiting?: (ahead: number, holder: string) => void | Promise<void>;
}

export class FleetLocks {
  private kv?: Promise<KV>;
  private ttlMs = 30_000;

  constructor(private readonly nc: NatsConnection, private readonly log: Logger) {}

  private bucket(): Promise<KV> {
    this.kv ??= new Kvm(this.nc).open(BUCKETS.locks).then(async (kv) => {
      const ttl = (await kv.status()).ttl;
      if (ttl > 0) this.ttlMs = ttl;
      return kv;
    });
    this.kv.catch(() => (this.kv = undefined));
    return this.kv;
  }

  /** Waits its turn and takes the lock; undefined if `signal` aborted first. */
  async acquire(o: AcquireOptions): Promise<HeldLock | undefined> {
    const kv = await this.bucket();
    const lockKey = `lock.${o.name}`;
    const ticketKey = `q.${o.name}.${o.ticket}`;
    const value = JSON.stringify({ holder: o.holder, ticket: o.ticket });
    await kv.put(ticketKey, value);
    let refreshedAt = Date.now();
    let reported = false;
    try {
      while (!o.signal.aborted) {
        if (Date.now() - refreshedAt > this.ttlMs / 3) {
          await kv.put(ticketKey, value); // still waiting: keep the place in line
          refreshedAt = Date.now();
        }
        const queue = (await collect(await kv.keys(`q.${o.name}.>`))).sort();
        const ahead = queue.indexOf(ticketKey);
        if (ahead === 0 || (ahead === -1 && queue.length === 0)) {
          const token = await kv.create(lockKey, value).catch(() => 0);
          if (token > 0) return this.held(kv, lockKey, value, token);
        }
        if (!reported && o.onWaiting) {
          reported = true;
          const holder = await kv.get(lockKey).then((e) => (e?.value.length ? JSON.parse(e.string()).holder as string : '')).catch(() => '');
          await o.onWaiting(Math.max(ahead, 0), holder);
        }
        await delay(POLL_MS, undefined, { signal: o.signal }).catch(() => {});
      }
      return undefined;
    } finally {
      await kv.delete(ticketKey).catch(() => {});
    }
  }

  private held(kv: KV, key: string, value: string, token: number): HeldLock {
    let revision = token;
    const lock: HeldLock = {
      token,
      lost: false,
      release: async () => {
        clearInterval(refresh);
        // Only our own entry: after a lapse someone else may hold it now.
        if (!lock.lost) await kv.delete(key, { previousSeq: revision }).catch(() => {});
      },
    };
    const refresh = setInterval(() => {
      kv.update(key, value, revision).then(
        (r) => (revision = r),
        (err: Error) => {
          if (lock.lost) return;
          lock.lost = true;
          clearInterval(refresh);
          this.log.warn('lost the serialize lock: it lapsed and was taken by another holder', { lock: key, token, error: err.message });
        },
      );
    }, Math.max(500, this.ttlMs / 3));
    return lock;
  }
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of it) out.push(k);
  return out;
}
