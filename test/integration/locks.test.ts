// The serialize locks' use-case (LockService) against a real etcd: a waiting call is woken by the
// lock's watch (it has no other way to learn the lock came free within its wait), one watch per
// lock name serves every waiter, waiters take the lock in submission order, fencing tokens
// strictly increase even when the lock keys are deleted and made again, and an etcd that does
// not answer a refresh is an error, never "no longer held". Behaviour only, no timings.

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LockService } from '../../src/controller/locks.js';
import { UnavailableError } from '../../src/errors.js';
import { Kv } from '../../src/store/kv.js';
import { Leases } from '../../src/store/leases.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { waitFor } from '../e2e/crash-helpers.js';

/** Long enough that no lease lapses during a test, and a wait (a third of it) outlasts any test step. */
const TTL_S = 90;
const WAIT = { ms: 60_000 };

let servers: TestServers;
let kv: Kv;
let leases: Leases;
let locks: LockService;

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('locks')}/` });
  leases = new Leases(kv);
  locks = new LockService({ kv, leases, ttlSeconds: TTL_S });
}, 60_000);

afterAll(async () => {
  await locks?.close();
  leases?.close();
  kv?.close();
  await servers?.stop();
});

const who = (executorId: string) => ({ executorId, holder: `${executorId}-name` });
/** Tickets sort in submission order, like <execution id>.<task key>. */
const ticket = (n: number) => `t${String(n).padStart(3, '0')}.task`;

describe('waiting for a serialize lock', () => {
  it('a waiting call is woken by the watch when the holder gives the lock back', async () => {
    const name = uniqueName('wake');
    const held = await locks.acquire(name, ticket(1), who('e1'));
    expect(held).toMatchObject({ acquired: true, ttlMs: TTL_S * 1000 });
    expect(held.remainingMs).toBeGreaterThanOrEqual(TTL_S * 1000);

    const waiting = locks.acquire(name, ticket(2), who('e2'), WAIT);
    // Asleep on the watch: from here only the watch can wake it before its wait (30 s) runs out.
    await waitFor('the call to wait on the watch', async () => locks.asleep(name), (n) => n === 1, 10_000);
    await locks.release(name, ticket(1), held.token, 'e1');
    const r = await waiting;
    expect(r).toMatchObject({ acquired: true, ahead: 0 });
    expect(r.token).toBeGreaterThan(held.token);
    expect(r.remainingMs).toBeGreaterThanOrEqual(TTL_S * 1000);
    await locks.release(name, ticket(2), r.token, 'e2');
  });

  it('one watch per lock name serves every waiting call; they take the lock in submission order', async () => {
    const watch = vi.spyOn(kv.client, 'watch');
    try {
      const [a, b] = [uniqueName('shared-a'), uniqueName('shared-b')];
      const first = { a: await locks.acquire(a, ticket(0), who('e0')), b: await locks.acquire(b, ticket(0), who('e0')) };
      const before = locks.watchCount;
      // Four waiters on a (asked out of order), two on b.
      const order = [3, 1, 4, 2];
      const onA = order.map((n) => locks.acquire(a, ticket(n), who(`e${n}`), WAIT).then((r) => ({ n, r })));
      const onB = [1, 2].map((n) => locks.acquire(b, ticket(n), who(`e${n}`), WAIT).then((r) => ({ n, r })));
      await waitFor('every call to wait', async () => [locks.asleep(a), locks.asleep(b)], ([x, y]) => x === 4 && y === 2, 10_000);
      expect(watch).toHaveBeenCalledTimes(2);
      expect(locks.watchCount).toBe(before + 2);

      // Each release lets exactly the next ticket in line take the lock.
      const taken: number[] = [];
      let holder = { n: 0, token: first.a.token };
      const pending = new Map(onA.map((p, i) => [order[i]!, p]));
      for (const n of [1, 2, 3, 4]) {
        await locks.release(a, ticket(holder.n), holder.token, `e${holder.n}`);
        const next = await pending.get(n)!;
        expect(next.r.acquired, `ticket ${n}`).toBe(true);
        expect(next.r.token).toBeGreaterThan(holder.token);
        taken.push(next.n);
        holder = { n, token: next.r.token };
      }
      expect(taken).toEqual([1, 2, 3, 4]);
      await locks.release(a, ticket(4), holder.token, 'e4');

      await locks.release(b, ticket(0), first.b.token, 'e0');
      const b1 = (await onB[0]!).r;
      expect(b1.acquired).toBe(true);
      await locks.release(b, ticket(1), b1.token, 'e1');
      expect((await onB[1]!).r.acquired).toBe(true);
      expect(watch).toHaveBeenCalledTimes(2);
    } finally {
      watch.mockRestore();
    }
  });

  it('a wait ends with "not yet" when its time is up, or at once when the caller goes away', async () => {
    const name = uniqueName('bounded');
    const held = await locks.acquire(name, ticket(1), who('e1'));
    const short = await locks.acquire(name, ticket(2), who('e2'), { ms: 200 });
    expect(short).toMatchObject({ acquired: false, ahead: 1, holder: 'e1-name' });
    const gone = new AbortController();
    const waiting = locks.acquire(name, ticket(2), who('e2'), { ...WAIT, signal: gone.signal });
    await waitFor('the call to wait on the watch', async () => locks.asleep(name), (n) => n === 1, 10_000);
    gone.abort();
    expect(await waiting).toMatchObject({ acquired: false, ahead: 1 });
    await locks.release(name, ticket(2), 0, 'e2');
    await locks.release(name, ticket(1), held.token, 'e1');
  });
});

describe('fencing tokens', () => {
  it('strictly increase across holders and locks, also after the lock keys are deleted and made again and etcd is compacted', async () => {
    const name = uniqueName('tokens');
    const tokens: number[] = [];
    const takeAndGive = async (lock: string, n: number) => {
      const r = await locks.acquire(lock, ticket(n), who(`e${n}`));
      expect(r.acquired).toBe(true);
      tokens.push(r.token);
      await locks.release(lock, ticket(n), r.token, `e${n}`);
    };
    await takeAndGive(name, 1);
    await takeAndGive(name, 2);
    // A holder whose keys are deleted by hand (the lock and the whole line), then etcd compacted.
    const r = await locks.acquire(name, ticket(3), who('e3'));
    tokens.push(r.token);
    await kv.deletePrefix(kv.key('locks', ''));
    await kv.deletePrefix(kv.key('lock-queue', ''));
    await kv.client.kv.compact({ revision: String(await kv.revision()), physical: true });
    await takeAndGive(name, 4);
    await takeAndGive(uniqueName('other'), 1);
    await takeAndGive(name, 5);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i], `token ${i} after ${tokens[i - 1]}`).toBeGreaterThan(tokens[i - 1]!);
    // The holder whose keys were deleted no longer holds it.
    expect((await locks.refresh(name, ticket(3), r.token, 'e3')).held).toBe(false);
  });
});

describe('refreshing a held lock', () => {
  it('answers how long the lease lasts; an etcd that does not answer is an error, not a lost lock', async () => {
    const flaky = { failNext: false };
    const service = new LockService({
      kv,
      ttlSeconds: TTL_S,
      leases: Object.assign(Object.create(leases) as Leases, {
        keepAlive: (id: string) => {
          if (!flaky.failNext) return leases.keepAlive(id);
          flaky.failNext = false;
          return Promise.reject(new UnavailableError('etcd did not answer a lease keep-alive in time'));
        },
      }),
    });
    const name = uniqueName('refresh');
    const r = await service.acquire(name, ticket(1), who('e1'));
    const ok = await service.refresh(name, ticket(1), r.token, 'e1');
    expect(ok).toMatchObject({ held: true, ttlMs: TTL_S * 1000 });
    expect(ok.remainingMs).toBeGreaterThanOrEqual(TTL_S * 1000);
    flaky.failNext = true;
    await expect(service.refresh(name, ticket(1), r.token, 'e1')).rejects.toBeInstanceOf(UnavailableError);
    expect((await service.refresh(name, ticket(1), r.token, 'e1')).held).toBe(true);
    // Another executor's refresh of the ticket, or a wrong token, is not held.
    expect((await service.refresh(name, ticket(1), r.token, 'e2')).held).toBe(false);
    expect((await service.refresh(name, ticket(1), r.token + 1, 'e1')).held).toBe(false);
    await service.release(name, ticket(1), r.token, 'e1');
    expect((await service.refresh(name, ticket(1), r.token, 'e1')).held).toBe(false);
    await service.close();
  });
});
