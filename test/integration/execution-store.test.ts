// The execution store against a real etcd: group commit writes many executions in one
// transaction, keeps the active index in step, and redoes an execution that lost a race.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    const results = await Promise.allSettled([store.create(execution('DUP')), store.create(execution('NEW1')), store.create(execution('NEW2'))]);
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
    await store.create(execution('SHARED1'));
    const first = store.getShared('SHARED1'); // goes at once
    const [a, b, missing] = await Promise.all([store.getShared('SHARED1'), store.getShared('SHARED1'), store.getShared('NOPE')]);
    expect(a?.value.id).toBe('SHARED1');
    expect(b?.value).toBe(a?.value); // one read, one parsed copy
    expect((await first)?.value).not.toBe(a?.value); // a read that began before them does not answer them
    expect(missing).toBeUndefined();
  });
});
