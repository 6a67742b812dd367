// The execution store against a real etcd: group commit writes many executions in one
// transaction, keeps the active index in step, and redoes an execution that lost a race.

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Execution } from '../../src/domain/execution.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Kv } from '../../src/store/kv.js';
import { executionRecord } from '../harness/records.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;
let store: EtcdExecutionStore;

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('store')}/` });
  store = new EtcdExecutionStore(kv);
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
});

const execution = (id: string): Execution => executionRecord(id);

describe('create (group commit)', () => {
  it('writes concurrent creates together, each one recorded and indexed', async () => {
    const ids = Array.from({ length: 120 }, (_, i) => `C${String(i).padStart(4, '0')}`);
    const before = await kv.revision();
    await Promise.all(ids.map((id) => store.create(execution(id))));
    // 120 creates in fewer transactions than creates: each transaction is one revision.
    expect((await kv.revision()) - before).toBeLessThan(ids.length);
    const active = new Set((await store.active()).map((a) => a.id));
    for (const id of ids) {
      expect((await store.get(id))?.value.id).toBe(id);
      expect(active.has(id)).toBe(true);
    }
  });

  it('refuses an id that exists, without failing the others written with it', async () => {
    await store.create(execution('DUP'));
    // Another record under the id (the same bytes would be this write, made before: see below).
    const clash = executionRecord('DUP', { requester: 'someone else' });
    const results = await Promise.allSettled([store.create(clash), store.create(execution('NEW1')), store.create(execution('NEW2'))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect((await store.get('NEW2'))?.value.id).toBe('NEW2');
  });
});

describe('updateMany (group commit)', () => {
  it('writes every change, across several transactions, and keeps the active index in step', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `G${String(i).padStart(4, '0')}`);
    for (const id of ids) await store.create(execution(id));
    const before = await kv.revision();
    const res = await store.updateMany([...ids, 'MISSING'], (x) => {
      if (Number(x.id.slice(1)) % 2) return false;
      x.state = 'SUCCEEDED';
      x.reason = 'done';
      return true;
    });
    expect(res.has('MISSING')).toBe(false);
    expect([...res.values()].filter((r) => r.changed)).toHaveLength(50);
    // 50 changes in groups of 42: two transactions, so the store revision moved by two.
    expect((await kv.revision()) - before).toBe(2);
    const active = new Set((await store.active()).map((a) => a.id));
    for (const id of ids) {
      const x = (await store.get(id))!.value;
      expect(x.state).toBe(Number(id.slice(1)) % 2 ? 'RUNNING' : 'SUCCEEDED');
      expect(active.has(id)).toBe(x.state === 'RUNNING');
    }
  });

  it('redoes an execution changed concurrently, so neither change is lost', async () => {
    // A store whose group read is stale: RACE1 changes between the read and the transaction.
    class StaleRead extends EtcdExecutionStore {
      override async getMany(ids: string[]) {
        const snapshot = await super.getMany(ids);
        await this.update('RACE1', (y) => ((y.reason = 'other writer'), true));
        return snapshot;
      }
    }
    const stale = new StaleRead(kv);
    await stale.create(execution('RACE1'));
    await stale.create(execution('RACE2'));
    const res = await stale.updateMany(['RACE1', 'RACE2'], (x) => {
      x.tasks.push({ key: 'k', executor_id: 'e', executor_name: 'e', state: 'PENDING', attempts: 0, started_at_ms: 0, finished_at_ms: 0, reason: '', wave: 0 });
      return true;
    });
    const r1 = (await stale.get('RACE1'))!.value;
    expect(r1.reason).toBe('other writer'); // the other writer's change survived
    expect(r1.tasks).toHaveLength(1); // ours was redone on top of it, once
    expect((await stale.get('RACE2'))!.value.tasks).toHaveLength(1);
    expect(res.get('RACE1')).toMatchObject({ changed: true });
  });

  it('mayChange: a record it says nothing will change is neither copied nor given to fn; the others are', async () => {
    const ids = ['LOOK1', 'LOOK2', 'LOOK3'];
    for (const id of ids) await store.create(execution(id));
    const before = await kv.revision();
    const looked: string[] = [];
    const given: string[] = [];
    const res = await store.updateMany(
      ids,
      (x) => (given.push(x.id), (x.reason = 'changed'), true),
      (x) => (looked.push(x.id), x.id === 'LOOK2'),
    );
    expect(looked.sort()).toEqual(ids);
    expect(given).toEqual(['LOOK2']);
    expect(ids.map((id) => res.get(id)?.changed)).toEqual([false, true, false]);
    expect((await kv.revision()) - before).toBe(1);
    expect((await Promise.all(ids.map((id) => store.get(id)))).map((v) => v!.value.reason)).toEqual(['', 'changed', '']);
  });
});

describe('records this store wrote last', () => {
  it('are not read back for the next update, yet a change by another writer is never lost', async () => {
    const mine = new EtcdExecutionStore(kv);
    const other = new EtcdExecutionStore(kv);
    await mine.create(execution('MINE1'));
    await mine.updateMany(['MINE1'], (x) => ((x.reason = 'first'), true));
    // Another replica writes in between: this store's copy is now stale.
    await other.update('MINE1', (x) => ((x.requester = 'other replica'), true));
    const res = await mine.updateMany(['MINE1'], (x) => ((x.reason = `${x.reason}, second`), true));
    const stored = (await mine.get('MINE1'))!.value;
    expect(stored).toMatchObject({ requester: 'other replica', reason: 'first, second' });
    expect(res.get('MINE1')).toMatchObject({ changed: true, execution: stored });
  });

  it('getShared: reads that arrive while one is in flight are done together, after it; unknown ids read as undefined', async () => {
    // Written by another replica: this store holds no copy of it, so each read parses the record.
    await new EtcdExecutionStore(kv).create(execution('SHARED1'));
    const first = store.getShared('SHARED1'); // goes at once
    const [a, b, missing] = await Promise.all([store.getShared('SHARED1'), store.getShared('SHARED1'), store.getShared('NOPE')]);
    expect(a?.value.id).toBe('SHARED1');
    expect(b?.value).toBe(a?.value); // one read, one parsed copy
    expect((await first)?.value).not.toBe(a?.value); // a read that began before them does not answer them
    expect(missing).toBeUndefined();
  });

  it('reads and watches of a record still at the revision this store wrote answer with its copy, not a parse; once another writer changed it, with the change', async () => {
    const mine = new EtcdExecutionStore(kv);
    const other = new EtcdExecutionStore(kv);
    await mine.create(execution('COPY1'));
    await mine.updateMany(['COPY1'], (x) => ((x.reason = 'mine'), true));
    const own = mine.ownCopy('COPY1')!;
    const read = await mine.getShared('COPY1');
    expect(read).toEqual(own);
    expect(read?.value).toBe(own.value); // the very copy: not sent again, not parsed
    expect((await mine.getMany(['COPY1'])).get('COPY1')?.value).toBe(own.value);
    // A watch from before the write hears it, and answers with the copy too.
    const ac = new AbortController();
    const seen = mine.changes('COPY1', own.revision - 1, ac.signal)[Symbol.asyncIterator]();
    expect((await seen.next()).value).toBe(own.value);
    // Another replica writes: the copy is stale, and both answer with what it wrote.
    await other.update('COPY1', (x) => ((x.reason = 'other'), true));
    const again = await mine.getShared('COPY1');
    expect(again?.value.reason).toBe('other');
    expect(again!.revision).toBeGreaterThan(own.revision);
    const next = (await seen.next()).value as Execution;
    expect(next.reason).toBe('other');
    ac.abort();
    await seen.return?.();
  });

  it('a watch that hears a write of this store before the write is answered still answers with the copy', async () => {
    const mine = new EtcdExecutionStore(kv);
    await mine.create(execution('COPY2'));
    const ac = new AbortController();
    const seen = mine.changes('COPY2', mine.ownCopy('COPY2')!.revision, ac.signal)[Symbol.asyncIterator]();
    for (let i = 0; i < 20; i++) {
      // Asked before the write: the put may reach the watch before the write's answer reaches the store.
      const next = seen.next();
      const written = (await mine.updateMany(['COPY2'], (x) => ((x.reason = `write ${i}`), true))).get('COPY2')!.execution;
      expect((await next).value).toBe(written);
    }
    ac.abort();
    await seen.return?.();
  });
});

describe('idempotency keys (create with a claim)', () => {
  const claim = (keyHash: string, digest = 'd1', requester = 'me') => ({ requester, keyHash, digest });
  const leaseOf = async (key: string) => (await kv.client.get(key).exec()).kvs[0]?.lease;

  it('a key taken in the same batch or before returns its entry; the other creates of the batch are still made', async () => {
    // K-0 goes at once; the four after it form the next batch, two of them under one key.
    const [, a, b, c, d] = await Promise.all([
      store.create(execution('K-0')),
      store.create(execution('K-A'), claim('hash-k')),
      store.create(execution('K-B'), claim('hash-k', 'd2')),
      store.create(execution('K-C')),
      store.create(execution('K-D'), claim('hash-other')),
    ]);
    const made = [a, b].filter((r) => r.created);
    expect(made).toHaveLength(1);
    const reused = [a, b].find((r) => !r.created)!;
    const winner = a.created ? 'K-A' : 'K-B';
    expect(reused).toMatchObject({ created: false, existing: { execution_id: winner, digest: winner === 'K-A' ? 'd1' : 'd2' } });
    expect(await store.get(a.created ? 'K-B' : 'K-A')).toBeUndefined();
    expect([c, d]).toEqual([{ created: true }, { created: true }]);
    expect((await store.get('K-C'))?.value.id).toBe('K-C');

    // Later, the key still answers with the same execution and nothing new is written; a create
    // in the same batch is made all the same.
    const [, e, h] = await Promise.all([store.create(execution('K-G')), store.create(execution('K-E'), claim('hash-k')), store.create(execution('K-H'))]);
    expect(e).toMatchObject({ created: false, existing: { execution_id: winner } });
    expect(await store.get('K-E')).toBeUndefined();
    expect(h).toEqual({ created: true });
    expect((await store.get('K-H'))?.value.id).toBe('K-H');
    expect(await store.idempotencyEntry('me', 'hash-k')).toMatchObject({ execution_id: winner });
    // Another requester's key of the same value is another key.
    expect(await store.create(execution('K-F'), claim('hash-k', 'd1', 'someone else'))).toEqual({ created: true });
  });

  it('a create etcd committed though its answer was lost, tried again by the client, is created: not handed back as a retry under its key', async () => {
    // What the etcd client does when the connection fails mid-call (a leader killed): it sends
    // the call again, here to the same member. The first try commits; the second, whose answer
    // comes back, finds the keys taken by the first.
    const txn = kv.client.kv.txn.bind(kv.client.kv);
    let tries = 0;
    const retried = vi.spyOn(kv.client.kv, 'txn').mockImplementation(async (req, opts) => {
      if (tries++ === 0) await txn(req, opts);
      return txn(req, opts);
    });
    try {
      expect(await store.create(execution('LOST-ANSWER-1'), claim('hash-lost'))).toEqual({ created: true });
      expect(await store.create(execution('LOST-ANSWER-2'))).toEqual({ created: true });
    } finally {
      retried.mockRestore();
    }
    expect(tries).toBeGreaterThan(2);
    expect((await store.get('LOST-ANSWER-1'))?.value.id).toBe('LOST-ANSWER-1');
    // A real retry of the request, a new execution under the same key, is still handed the first.
    expect(await store.create(execution('LOST-ANSWER-3'), claim('hash-lost'))).toMatchObject({ created: false, existing: { execution_id: 'LOST-ANSWER-1' } });
  });

  it('entries share one lease per hour that outlives each by 24 to 25 h; a lease etcd lost is replaced', async () => {
    let now = Date.UTC(2026, 0, 5, 10, 59, 0);
    const clocked = new EtcdExecutionStore(kv, { now: () => now });
    await clocked.create(execution('L-1'), claim('hash-l1'));
    await clocked.create(execution('L-2'), claim('hash-l2'));
    const lease = await leaseOf(clocked.idempotencyKey('me', 'hash-l1'));
    expect(lease).toBeDefined();
    expect(await leaseOf(clocked.idempotencyKey('me', 'hash-l2'))).toBe(lease);
    const ttl = Number((await kv.client.leaseClient.leaseTimeToLive({ ID: lease!, keys: false })).TTL);
    expect(ttl).toBeGreaterThan(24.9 * 3600);
    expect(ttl).toBeLessThanOrEqual(25 * 3600);
    // The record and its index carry no lease.
    expect(Number(await leaseOf(clocked.key('L-1')))).toBe(0);

    now += 60_000; // the next hour: a new lease
    await clocked.create(execution('L-3'), claim('hash-l3'));
    const next = await leaseOf(clocked.idempotencyKey('me', 'hash-l3'));
    expect(next).not.toBe(lease);

    // The lease is revoked under the store (its entries go with it): the next create gets another.
    await kv.client.leaseClient.leaseRevoke({ ID: next! });
    expect(await clocked.idempotencyEntry('me', 'hash-l3')).toBeUndefined();
    expect(await clocked.create(execution('L-4'), claim('hash-l4'))).toEqual({ created: true });
    const renewed = await leaseOf(clocked.idempotencyKey('me', 'hash-l4'));
    expect(renewed).toBeDefined();
    expect(renewed).not.toBe(next);
  });
});
