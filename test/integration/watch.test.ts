// WatchExecution's use-case against a real etcd: the first snapshot at once, then the record as
// it changes; a watcher that reads slower than the record changes gets the newest snapshot
// rather than every one in between, and the stream ends with the terminal one.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutionService } from '../../src/controller/executions.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Kv } from '../../src/store/kv.js';
import { eventually } from '../harness/eventually.js';
import { runningExecution } from '../harness/records.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;
let store: EtcdExecutionStore;
let service: ExecutionService;
const viewer = { name: 'v', role: 'viewer' as const, groups: [] };

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('watch')}/` });
  store = new EtcdExecutionStore(kv);
  // watch() needs only the store and etcd; the other collaborators are not used by it.
  service = new ExecutionService({ kv, store } as unknown as ConstructorParameters<typeof ExecutionService>[0]);
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
});

describe('watch', () => {
  it('a slow reader gets the newest snapshot, not each one in between, and the terminal one last', async () => {
    await store.create(runningExecution('W1'));
    const ac = new AbortController();
    const it = service.watch(viewer, 'W1', ac.signal)[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ reason: 'step 0' });
    const second = it.next(); // the watcher is set up behind this call
    await store.update('W1', (x) => ((x.reason = 'step 1'), true));
    expect((await second).value).toMatchObject({ reason: 'step 1' });

    // Not reading now: three changes pile up, the last of them terminal.
    for (const step of [2, 3]) await store.update('W1', (x) => ((x.reason = `step ${step}`), true));
    await store.update('W1', (x) => Object.assign(x, { reason: 'step 4', state: 'SUCCEEDED' }) !== undefined);
    await eventually('etcd to have the last change', async () => (await store.get('W1'))?.value.state === 'SUCCEEDED');
    await new Promise((r) => setTimeout(r, 200)); // let the watch events arrive

    const next = await it.next();
    expect(next.value).toMatchObject({ reason: 'step 4', state: 'SUCCEEDED' });
    expect((await it.next()).done).toBe(true);
  });
});
