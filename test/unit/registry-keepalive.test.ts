// A heartbeat whose lease keep-alive etcd did not answer in time fails (UNAVAILABLE; the executor
// retries) and takes no new lease: the lease is most likely still there, and a new lease, alive
// key and record write per slow answer is what turns a slow etcd into an overloaded one.
// A lease that is really gone (keep-alive answers 0) is replaced, as before.

import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import { ExecutorRegistry } from '../../src/controller/executors.js';
import { UnavailableError } from '../../src/errors.js';
import type { ExecutorRecord } from '../../src/domain/executor.js';
import { MemoryExecutorStore, MemoryLeases } from '../../src/store/memory.js';
import { createLogger } from '../../src/util/log.js';

/** Memory leases whose keep-alive can be made to time out, counting grants. */
class SlowLeases extends MemoryLeases {
  stalled = false;
  slowMs = 0;
  grants = 0;
  override async grant(ttlSeconds: number): Promise<string> {
    this.grants++;
    return super.grant(ttlSeconds);
  }
  override async keepAlive(id: string): Promise<number> {
    if (this.stalled) throw new UnavailableError('etcd did not answer a lease keep-alive in time');
    if (this.slowMs) await new Promise((r) => setTimeout(r, this.slowMs));
    return super.keepAlive(id);
  }
}

/** A store whose next record update can be held back, as a slow etcd write. */
class SlowStore extends MemoryExecutorStore {
  holdNextUpdate = 0;
  boundTo = new Map<string, string>();
  override async update(id: string, fn: (cur: ExecutorRecord) => ExecutorRecord | undefined): Promise<ExecutorRecord | undefined> {
    if (this.holdNextUpdate) {
      const ms = this.holdNextUpdate;
      this.holdNextUpdate = 0;
      await new Promise((r) => setTimeout(r, ms));
    }
    return super.update(id, fn);
  }
  /** A copy of the record that no longer follows etcd, as the registry's watch-fed one under load. */
  frozen?: ExecutorRecord;
  override async getFast(id: string): Promise<ExecutorRecord | undefined> {
    return this.frozen ?? super.getFast(id);
  }
  override async putAlive(id: string, leaseId: string): Promise<void> {
    this.boundTo.set(id, leaseId);
    return super.putAlive(id, leaseId);
  }
}

async function rig() {
  const leases = new SlowLeases();
  const store = new SlowStore(leases);
  const results: string[] = [];
  const reg = new ExecutorRegistry(store, leases, new MemoryBus(), { executorUser: async () => undefined, revoke: async () => {} }, {
    registrationTokens: [{ name: 'test', token: 'reg', groups: [] }],
    pingDeadlineSeconds: 30,
    natsAdvertise: [],
    onHeartbeat: (r) => results.push(r),
  }, createLogger({ level: 'error', name: 'test', write: () => {} }));
  const r = await reg.register({ registrationToken: 'reg', name: 'e1', groups: [], labels: {}, runners: ['host'], concurrency: 1, pingIntervalSeconds: 10, version: '1.0', replace: false });
  const beat = () => reg.heartbeat({ executorId: r.executorId, executorSecret: r.executorSecret, version: '1.0', runningTasks: 0, load: 0, draining: false });
  const deregister = () => reg.deregister(r.executorId, r.executorSecret);
  return { leases, store, beat, deregister, id: r.executorId, results };
}

describe('heartbeat lease keep-alive', () => {
  it('fails the heartbeat on a keep-alive that timed out, and takes no new lease', async () => {
    const { leases, store, beat, id, results } = await rig();
    await beat();
    const lease = (await store.get(id))!.lease_id;
    expect(leases.grants).toBe(1);

    leases.stalled = true;
    await expect(beat()).rejects.toThrow(UnavailableError);
    expect(leases.grants).toBe(1);
    expect((await store.get(id))!.lease_id).toBe(lease);
    expect(results).toEqual(['accepted', 'failed']);

    leases.stalled = false;
    expect((await beat()).state).toBe('ACTIVE');
    expect((await store.get(id))!.lease_id).toBe(lease);
    expect(leases.grants).toBe(1);
  });

  it('takes a new lease when the old one is gone', async () => {
    const { leases, store, beat, id } = await rig();
    await beat();
    const lease = (await store.get(id))!.lease_id;
    leases.lapse(lease);
    expect((await beat()).state).toBe('ACTIVE');
    expect(leases.grants).toBe(2);
    expect((await store.get(id))!.lease_id).not.toBe(lease);
    expect(await store.isAlive(id)).toBe(true);
  });

  it('takes one new lease for two heartbeats at once after it lapsed, and binds the alive key to the lease the record names', async () => {
    const { leases, store, beat, id } = await rig();
    await beat();
    leases.lapse((await store.get(id))!.lease_id);
    // The first beat's record write is slow; the second beat (a retry on a new stream) comes meanwhile.
    store.holdNextUpdate = 30;
    const [a, b] = await Promise.all([beat(), beat()]);
    expect([a.state, b.state]).toEqual(['ACTIVE', 'ACTIVE']);
    expect(leases.grants).toBe(2);
    const rec = (await store.get(id))!;
    expect(store.boundTo.get(id)).toBe(rec.lease_id);
    expect(await store.isAlive(id)).toBe(true);
  });

  it('keeps the lease its last heartbeat took while the record\'s copy in memory still names the one before, and takes no new one', async () => {
    const { leases, store, beat, id } = await rig();
    await beat();
    const first = (await store.get(id))!.lease_id;
    store.frozen = (await store.get(id))!; // the copy stops here: it names the first lease from now on
    leases.lapse(first);
    await beat(); // finds the first lease gone: takes a second
    expect(leases.grants).toBe(2);
    const second = (await store.get(id))!.lease_id;
    expect(second).not.toBe(first);
    for (let i = 0; i < 3; i++) expect((await beat()).state).toBe('ACTIVE');
    expect(leases.grants).toBe(2);
    expect([(await store.get(id))!.lease_id, store.boundTo.get(id), await store.isAlive(id)]).toEqual([second, second, true]);
  });

  it('marks an executor STOPPED after a heartbeat still being worked on when it deregisters, not before it', async () => {
    const { leases, store, beat, deregister, id } = await rig();
    await beat();
    leases.slowMs = 30;
    // The executor's last (draining) beat waits on etcd while it deregisters.
    const last = beat();
    await deregister();
    await last;
    expect((await store.get(id))!.state).toBe('STOPPED');
    expect(await store.isAlive(id)).toBe(false);
  });
});
