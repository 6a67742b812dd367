// Fleet-wide locks for serialized jobs, in etcd, behind the executor RPCs (executors hold no
// rights on any store):
//   lock-queue/<name>/<ticket>   one per task waiting for (or holding) the lock; tickets sort in
//                                submission order (<execution id>.<task key>, ids are time-ordered)
//   locks/<name>                 the holder; created only if absent, by the first ticket in line
// Both entries of a ticket share one lease of lock_ttl_seconds, which the executor keeps alive
// by asking again (waiting) or refreshing (holding): an executor that dies stops doing so and its
// place or its lock lapses. The fencing token is the etcd revision that created locks/<name>:
// strictly increasing across every lock and holder, and never reused.
//
// A waiting AcquireLock may be held here (a long poll) until its ticket can take the lock. One
// etcd watch per lock name, on its line, serves every call of this process waiting for that lock.

import { ConflictError } from '../errors.js';
import { watchKeys, type KeyWatch } from '../store/key-watch.js';
import type { Kv } from '../store/kv.js';
import type { Leases } from '../store/leases.js';

/** The longest one call may wait, whatever it asks for. */
const MAX_WAIT_MS = 60_000;
/** A lock's watch outlives its last waiter this long: waiters ask again at once after each wait. */
const WATCH_LINGER_MS = 30_000;

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
  /** How long the ticket's lease lasts at least, counted from when the call began. */
  remainingMs: number;
}

export interface LockRefresh {
  held: boolean;
  ttlMs: number;
  /** As in LockTry; 0 when not held. */
  remainingMs: number;
}

/** A ticket whose lease was just kept alive (or granted): `keptAt` is when, on performance.now(). */
interface Kept {
  entry: Entry;
  keptAt: number;
  ttlMs: number;
}

/** One look at the line: taken, or how far back the ticket stands (`queued` false: it is not in line). */
type Look = { acquired: true; token: number; holder: string } | { acquired: false; queued: boolean; ahead: number; holder: string };

export class LockService {
  private readonly watches = new Map<string, LockWatch>();
  private closed = false;

  constructor(private readonly d: { kv: Kv; leases: Leases; ttlSeconds: number }) {}

  private get ttlMs(): number {
    return this.d.ttlSeconds * 1000;
  }

  private lockKey(name: string): string {
    return this.d.kv.key('locks', name);
  }

  private queuePrefix(name: string): string {
    return this.d.kv.key('lock-queue', name, '');
  }

  /**
   * Keeps the ticket's place in line and takes the lock if it is first and the lock is free.
   * Otherwise waits up to `wait.ms` (at most a third of the TTL, so that the place it kept alive
   * at the start cannot lapse meanwhile) for the ticket to take it, woken by the lock's watch.
   */
  async acquire(name: string, ticket: string, who: { executorId: string; holder: string }, wait: { ms: number; signal?: AbortSignal } = { ms: 0 }): Promise<LockTry> {
    const began = performance.now();
    const kept = await this.keepTicket(name, ticket, who);
    const until = began + Math.min(wait.ms, MAX_WAIT_MS, this.ttlMs / 3);
    let look = await this.look(name, kept.entry);
    if (!look.acquired && look.queued && performance.now() < until && !this.closed) {
      look = await this.waitFor(name, kept.entry, until, wait.signal);
      // Taken after a wait: its lease gets a fresh TTL, which the answer counts.
      if (look.acquired) Object.assign(kept, await this.keepAgain(kept));
    }
    const remainingMs = Math.max(0, Math.round(kept.keptAt - began + kept.ttlMs));
    return look.acquired
      ? { acquired: true, token: look.token, ahead: 0, holder: look.holder, ttlMs: kept.ttlMs, remainingMs }
      : { acquired: false, token: 0, ahead: look.ahead, holder: look.holder, ttlMs: kept.ttlMs, remainingMs };
  }

  /**
   * Another TTL for the ticket; with a token, whether the ticket still holds that lock. An etcd
   * that does not answer is an error (UnavailableError), never "not held": the executor tries again.
   */
  async refresh(name: string, ticket: string, token: number, executorId: string): Promise<LockRefresh> {
    const began = performance.now();
    const gone = { held: false, ttlMs: this.ttlMs, remainingMs: 0 };
    const entry = await this.entry(this.queuePrefix(name) + ticket);
    if (!entry || entry.executor_id !== executorId) return gone;
    const keptAt = performance.now();
    const ttlS = await this.d.kv.wrap(() => this.d.leases.keepAlive(entry.lease));
    if (ttlS === 0) return gone;
    if (token > 0) {
      const cur = (await this.d.kv.wrap(() => this.d.kv.client.get(this.lockKey(name)).exec())).kvs[0];
      if (!cur || Number(cur.create_revision) !== token || (JSON.parse(cur.value.toString()) as Entry).ticket !== ticket) return gone;
    }
    return { held: true, ttlMs: ttlS * 1000, remainingMs: Math.max(0, Math.round(keptAt - began + ttlS * 1000)) };
  }

  /** Gives the lock back (only if this ticket still holds it) and leaves the line, in one revision. */
  async release(name: string, ticket: string, token: number, executorId: string): Promise<void> {
    const c = this.d.kv.client;
    const queueKey = this.queuePrefix(name) + ticket;
    const entry = await this.entry(queueKey);
    if (!entry || entry.executor_id !== executorId) return;
    const lockKey = this.lockKey(name);
    await this.d.kv.wrap(() => c.if(lockKey, 'Create', '==', token || -1).then(c.delete().key(lockKey), c.delete().key(queueKey)).else(c.delete().key(queueKey)).commit());
    // Whatever else is on the ticket's lease goes with it (a lock taken by a call whose answer was lost).
    await this.d.leases.revoke(entry.lease);
  }

  /** Ends every wait (each answers "not yet") and every watch; later calls do not wait. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.watches.values()];
    this.watches.clear();
    await Promise.all(all.map((w) => w.close()));
  }

  /** How many lock watches this process has open: one per lock name waited for lately. */
  get watchCount(): number {
    return this.watches.size;
  }

  /** How many calls wait, asleep, for `name`'s watch to wake them. */
  asleep(name: string): number {
    return this.watches.get(name)?.asleep ?? 0;
  }

  private async keepTicket(name: string, ticket: string, who: { executorId: string; holder: string }): Promise<Kept> {
    const queueKey = this.queuePrefix(name) + ticket;
    const entry = await this.entry(queueKey);
    if (entry && entry.executor_id !== who.executorId) {
      // The task was claimed again by another executor while the first one's place (or lock) is
      // still on its lease: that lease must lapse first, or two could hold the lock.
      throw new ConflictError('lock ticket', ticket, `it is still held in line by the task's previous executor; it lapses within ${this.d.ttlSeconds}s`);
    }
    if (entry) {
      const keptAt = performance.now();
      // Throws when etcd does not answer: never mistaken for a lapse (that would take a second lease).
      const ttlS = await this.d.kv.wrap(() => this.d.leases.keepAlive(entry.lease));
      if (ttlS > 0) return { entry, keptAt, ttlMs: ttlS * 1000 };
    }
    // New in line, or its lease lapsed (and any lock it held with it): a new place, same ticket.
    const keptAt = performance.now();
    const lease = await this.d.kv.wrap(() => this.d.leases.grant(this.d.ttlSeconds));
    const fresh: Entry = { ticket, executor_id: who.executorId, holder: who.holder, lease };
    await this.d.kv.wrap(() => this.d.kv.client.put(queueKey).value(JSON.stringify(fresh)).lease(lease).exec());
    return { entry: fresh, keptAt, ttlMs: this.ttlMs };
  }

  private async keepAgain(kept: Kept): Promise<Pick<Kept, 'keptAt' | 'ttlMs'>> {
    const keptAt = performance.now();
    const ttlS = await this.d.leases.keepAlive(kept.entry.lease).catch(() => 0);
    return ttlS > 0 ? { keptAt, ttlMs: ttlS * 1000 } : kept;
  }

  /** Reads the holder and the line; takes the lock if the ticket is first in line and the lock is free. */
  private async look(name: string, entry: Entry): Promise<Look> {
    const c = this.d.kv.client;
    const queueKey = this.queuePrefix(name) + entry.ticket;
    const [held, line] = await this.d.kv.wrap(() => Promise.all([c.get(this.lockKey(name)).exec(), c.getAll().prefix(this.queuePrefix(name)).keys()]));
    const cur = held.kvs[0];
    const h = cur ? (JSON.parse(cur.value.toString()) as Entry) : undefined;
    if (cur && h!.ticket === entry.ticket) return { acquired: true, token: Number(cur.create_revision), holder: h!.holder };
    const ahead = line.sort().indexOf(queueKey);
    if (ahead < 0) return { acquired: false, queued: false, ahead: 0, holder: h?.holder ?? '' };
    if (!cur && ahead === 0) {
      const res = await this.d.kv.wrap(() =>
        c.if(this.lockKey(name), 'Create', '==', 0).then(c.put(this.lockKey(name)).value(JSON.stringify(entry)).lease(entry.lease)).commit(),
      );
      if (res.succeeded) return { acquired: true, token: Number(res.header.revision), holder: entry.holder };
    }
    return { acquired: false, queued: true, ahead, holder: h?.holder ?? '' };
  }

  /**
   * Looks again each time the lock's watch wakes this waiter, until the ticket takes the lock,
   * `until` passes or the call goes away. Each wait ends within its bound and the executor's next
   * call looks afresh: that is the slow safety re-check for what the watch cannot show (a lock
   * key deleted by hand, a watch that broke).
   */
  private async waitFor(name: string, entry: Entry, until: number, signal?: AbortSignal): Promise<Look> {
    let watch = this.watches.get(name);
    if (!watch) {
      watch = new LockWatch(this.d.kv, this.queuePrefix(name), (w) => this.watches.get(name) === w && this.watches.delete(name));
      this.watches.set(name, watch);
    }
    const waiter = new Waiter(entry.ticket);
    watch.join(waiter);
    try {
      const ready = await bounded(watch.ready, until, signal);
      for (;;) {
        const look = await this.look(name, entry);
        if (look.acquired || !look.queued || !ready) return look;
        if (!(await waiter.sleep(until, signal)) || watch.closed) return look;
      }
    } finally {
      watch.leave(waiter);
    }
  }

  private async entry(key: string): Promise<Entry | undefined> {
    const raw = await this.d.kv.wrap(() => this.d.kv.client.get(key).string());
    return raw ? (JSON.parse(raw) as Entry) : undefined;
  }
}

/** One call waiting for a lock: poked by the watch, sleeping in between. */
class Waiter {
  /** Poked since it last slept: a deletion it has not looked at yet. */
  private poked = false;
  private wake: (() => void) | undefined;
  asleep = false;

  constructor(readonly ticket: string) {}

  poke(): void {
    this.poked = true;
    this.wake?.();
  }

  /** Until poked (true; at once if it was poked while awake), `until` passes or `signal` aborts (false). */
  async sleep(until: number, signal?: AbortSignal): Promise<boolean> {
    if (!this.poked) {
      this.asleep = true;
      await bounded(new Promise<boolean>((resolve) => (this.wake = () => resolve(true))), until, signal);
      this.asleep = false;
    }
    this.wake = undefined;
    const poked = this.poked;
    this.poked = false;
    return poked;
  }
}

/** What `p` resolves to, or false once `until` (performance.now()) passes or `signal` aborts. */
function bounded(p: Promise<boolean>, until: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', off);
      resolve(v);
    };
    const off = () => done(false);
    const timer = setTimeout(off, Math.max(0, until - performance.now()));
    signal?.addEventListener('abort', off, { once: true });
    if (signal?.aborted) off();
    p.then(done, off);
  });
}

/**
 * The etcd watch of one lock's line (lock-queue/<name>/), shared by every call of this process
 * waiting for that lock. Only deletions matter: a holder giving the lock back leaves the line in
 * the same revision, and a lapsed lease takes a ticket's place and any lock it held together.
 * Each one pokes the waiter with the smallest ticket here: only the first in line may take the
 * lock, and of this process's waiters only that one can be first.
 */
class LockWatch {
  readonly ready: Promise<boolean>;
  private readonly watch: KeyWatch;
  private readonly waiters = new Set<Waiter>();
  private linger: NodeJS.Timeout | undefined;
  closed = false;

  constructor(kv: Kv, prefix: string, private readonly onEnd: (w: LockWatch) => void) {
    this.watch = watchKeys(kv, {
      key: prefix,
      prefix: true,
      only: 'delete',
      onDelete: () => this.pokeFirst(),
      // Read afresh after a break (compaction, a lost connection): everyone looks again.
      onSnapshot: (_kvs, _revision, resumed) => {
        if (resumed) this.pokeAll();
      },
    });
    this.ready = this.watch.ready.then(
      (ok) => ok && !this.closed,
      () => (void this.close(), false),
    );
  }

  get asleep(): number {
    let n = 0;
    for (const w of this.waiters) if (w.asleep) n++;
    return n;
  }

  join(w: Waiter): void {
    clearTimeout(this.linger);
    this.waiters.add(w);
  }

  leave(w: Waiter): void {
    this.waiters.delete(w);
    if (this.waiters.size > 0 || this.closed) return;
    clearTimeout(this.linger);
    this.linger = setTimeout(() => this.waiters.size === 0 && void this.close(), WATCH_LINGER_MS);
    this.linger.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.linger);
    this.onEnd(this);
    this.pokeAll();
    await this.watch.close();
  }

  private pokeFirst(): void {
    let first: string | undefined;
    for (const w of this.waiters) if (first === undefined || w.ticket < first) first = w.ticket;
    for (const w of this.waiters) if (w.ticket === first) w.poke();
  }

  private pokeAll(): void {
    for (const w of this.waiters) w.poke();
  }
}
