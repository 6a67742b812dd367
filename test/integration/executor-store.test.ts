// The executor registry's live set against a real etcd: with the records kept in memory, one set
// is built per change of the registry and shared until the next (claims ask for it per batch),
// and a change made by another process, seen through the watch, gives a new one.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutorRecord } from '../../src/domain/executor.js';
import { EtcdExecutorStore } from '../../src/store/etcd-executors.js';
import { Kv } from '../../src/store/kv.js';
import { eventually } from '../harness/eventually.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;

const executor = (id: string, state: ExecutorRecord['state'] = 'ACTIVE'): ExecutorRecord => ({
  id, name: `n-${id}`, groups: [], labels: {}, runners: ['host'], concurrency: 1, version: 't', state,
  registered_at_ms: 1, last_seen_at_ms: 1, state_changed_at_ms: 1, ping_interval_seconds: 10, secret_hash: '', lease_id: '',
});

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('executors')}/` });
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
});

describe('liveIds', () => {
  it('from the cache: the same set until the registry changes, then one that has the change', async () => {
    const cached = new EtcdExecutorStore(kv);
    const other = new EtcdExecutorStore(kv); // another replica, writing without a cache
    await other.create(executor('L1'));
    await other.create(executor('L2', 'EXPIRED'));
    await cached.startCache();
    try {
      const first = await cached.liveIds();
      expect([...first]).toEqual(['L1']);
      expect(await cached.liveIds()).toBe(first); // not built again
      await other.create(executor('L3'));
      await eventually('L3 in the live set', async () => (await cached.liveIds()).has('L3'));
      expect([...(await cached.liveIds())].sort()).toEqual(['L1', 'L3']);
      await other.update('L1', (x) => ({ ...x, state: 'EXPIRED' }));
      await eventually('L1 out of the live set', async () => !(await cached.liveIds()).has('L1'));
      expect([...(await cached.liveIds())]).toEqual(['L3']);
      // Without a cache, read from etcd each time.
      expect([...(await other.liveIds())]).toEqual(['L3']);
    } finally {
      await cached.closeCache();
    }
  });
});
