// Fleet-wide locks for serialized jobs, in etcd, behind the executor RPCs (executors hold no
// rights on any store):
//   lock-queue/<name>/<ticket>   one per task waiting for (or holding) the lock; tickets sort in
//                                submission order (<execution id>.<task key>, ids are time-ordered)
//   locks/<name>                 the holder; created only if absent, by the first ticket in line
// Both entries of a ticket share one lease of lock_ttl_seconds, which the executor keeps alive
// by asking again (waiting) or refreshing (holding): an executor that dies stops doing so and its
// place or its lock lapses. The fencing token is the etcd revision that created locks/<name>:
// strictly increasing across every lock and holder, and never reused.

import type { Kv } from '../store/kv.js';
import type { Leases } from '../store/leases.js';

interface Entry {
  ticket: string;
  executor_id: string;
  holder: string;
  lease: string;
}

export interface LockTry {
  acquired: boolean;
  token: number;
  ahead: number;
  holder: string;
  ttlMs: number;
}

export class LockService {
  constructor(private readonly d: { kv: Kv; leases: Leases; ttlSeconds: number }) {}

  private lockKey(name: string): string {
    return this.d.kv.key('locks', name);
  }

  private queuePrefix(name: string): string {
    return this.d.kv.key('lock-queue', name, '');
  }

  /** One try: keeps the ticket's place in line, and takes the lock if it is first and the lock is free. */
  async acquire(name: string, ticket: string, who: { executorId: string; holder: string }): Promise<LockTry> {
    const c = this.d.kv.client;
    const queueKey = this.queuePrefix(name) + ticket;
    const ttlMs = this.d.ttlSeconds * 1000;
    let entry = await this.entry(queueKey);
    if (entry && entry.executor_id !== who.executorId) throw new Error(`ticket ${ticket} belongs to another executor`);
    if (!entry || (await this.d.leases.keepAlive(entry.lease).catch(() => 0)) === 0) {
      const lease = await this.d.leases.grant(this.d.ttlSeconds);
      entry = { ticket, executor_id: who.executorId, holder: who.holder, lease };
      await c.put(queueKey).value(JSON.stringify(entry)).lease(lease).exec();
    }
    const held = await c.get(this.lockKey(name)).exec();
    const cur = held.kvs[0];
    if (cur) {
      const h = JSON.parse(cur.value.toString()) as Entry;
      if (h.ticket === ticket) return { acquired: true, token: Number(cur.create_revision), ahead: 0, holder: h.holder, ttlMs };
    }
    const queue = (await c.getAll().prefix(this.queuePrefix(name)).keys()).sort();
    const ahead = Math.max(0, queue.indexOf(queueKey));
    if (!cur && ahead === 0) {
      const res = await c
        .if(this.lockKey(name), 'Create', '==', 0)
        .then(c.put(this.lockKey(name)).value(JSON.stringify(entry)).lease(entry.lease))
        .commit();
      if (res.succeeded) return { acquired: true, token: Number(res.header.revision), ahead: 0, holder: who.holder, ttlMs };
    }
    const holder = cur ? (JSON.parse(cur.value.toString()) as Entry).holder : '';
    return { acquired: false, token: 0, ahead, holder, ttlMs };
  }

  /** Another TTL for the ticket; with a token, whether the ticket still holds that lock. */
  async refresh(name: string, ticket: string, token: number, executorId: string): Promise<boolean> {
    const entry = await this.entry(this.queuePrefix(name) + ticket);
    if (!entry || entry.executor_id !== executorId) return false;
    if ((await this.d.leases.keepAlive(entry.lease).catch(() => 0)) === 0) return false;
    if (token === 0) return true;
    const cur = (await this.d.kv.client.get(this.lockKey(name)).exec()).kvs[0];
    return !!cur && Number(cur.create_revision) === token && (JSON.parse(cur.value.toString()) as Entry).ticket === ticket;
  }

  /** Gives the lock back (only if this ticket still holds it) and leaves the line. */
  async release(name: string, ticket: string, token: number, executorId: string): Promise<void> {
    const c = this.d.kv.client;
    const queueKey = this.queuePrefix(name) + ticket;
    const entry = await this.entry(queueKey);
    if (!entry || entry.executor_id !== executorId) return;
    if (token > 0) {
      await c.if(this.lockKey(name), 'Create', '==', token).then(c.delete().key(this.lockKey(name))).commit();
    }
    await c.delete().key(queueKey).exec();
    await this.d.leases.revoke(entry.lease);
  }

  private async entry(key: string): Promise<Entry | undefined> {
    const raw = await this.d.kv.client.get(key).string();
    return raw ? (JSON.parse(raw) as Entry) : undefined;
  }
}
