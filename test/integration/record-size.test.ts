// Execution records too large to store, against a real etcd whose request limit is small
// (--max-request-bytes 256 KiB): one such record in a group commit fails its execution alone,
// with the reason, and every other record of the batch is written; nothing is retried forever.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Execution } from '../../src/domain/execution.js';
import { LimitExceededError } from '../../src/errors.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Kv } from '../../src/store/kv.js';
import { executionRecord } from '../harness/records.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const KiB = 1024;
const ETCD_LIMIT = 256 * KiB;

let servers: TestServers;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers({ etcdMaxRequestBytes: ETCD_LIMIT });
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('records')}/` });
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
});

function execution(id: string): Execution {
  return executionRecord(id, {
    tasks: [{ key: 'e1', executor_id: 'e1', executor_name: 'web-1', state: 'RUNNING', attempts: 1, started_at_ms: 1, finished_at_ms: 0, reason: '', wave: 0 }],
  });
}

/** What a task's result adds to a record; `bytes` of reason. */
function finish(x: Execution, bytes: number): true {
  x.tasks[0]!.state = 'FAILED';
  x.tasks[0]!.reason = 'x'.repeat(bytes);
  x.state = 'FAILED';
  return true;
}

async function stored(store: EtcdExecutionStore, id: string): Promise<Execution> {
  return (await store.get(id))!.value;
}

describe('a record too large in a group commit', () => {
  it('etcd refuses it: that execution fails alone, with the reason; the others in the batch are written', async () => {
    // limits.record_bytes above etcd's own limit: etcd is the one that refuses.
    const store = new EtcdExecutionStore(kv, { recordBytes: 1024 * KiB });
    const ids = ['BIG-A', 'BIG-B', 'BIG-C'];
    for (const id of ids) await store.create(execution(id));
    const res = await store.updateMany(ids, (x) => finish(x, x.id === 'BIG-B' ? 300 * KiB : 10));

    for (const id of ['BIG-A', 'BIG-C']) {
      expect(res.get(id)).toMatchObject({ changed: true });
      expect(res.get(id)!.refused).toBeUndefined();
      expect((await stored(store, id)).tasks[0]!.reason).toBe('x'.repeat(10));
    }
    const b = await stored(store, 'BIG-B');
    expect(b.state).toBe('FAILED');
    expect(b.reason).toMatch(/^execution record is 300\.\d KiB, more than etcd takes in one request \(its --max-request-bytes\); limits\.record_bytes \(1 MiB\) should be below that$/);
    expect(b.tasks[0]!.reason).toBe(''); // the change was not written: the record is as stored, failed
    expect(res.get('BIG-B')).toMatchObject({ changed: true, refused: b.reason, execution: { state: 'FAILED' } });
    // Off the active index with the others: nothing is left for the sweeper to retry.
    expect((await store.active()).map((a) => a.id).filter((id) => id.startsWith('BIG-'))).toEqual([]);
  });

  it('over limits.record_bytes: refused without asking etcd, the same way', async () => {
    const store = new EtcdExecutionStore(kv, { recordBytes: 64 * KiB });
    const ids = ['OVER-A', 'OVER-B'];
    for (const id of ids) await store.create(execution(id));
    const res = await store.updateMany(ids, (x) => finish(x, x.id === 'OVER-A' ? 100 * KiB : 10));
    expect((await stored(store, 'OVER-A')).reason).toMatch(/^execution record is 100\.\d KiB; the limit is 64 KiB \(limits\.record_bytes\)$/);
    expect(res.get('OVER-A')?.refused).toBeDefined();
    expect((await stored(store, 'OVER-B')).tasks[0]!.reason).toBe('x'.repeat(10));
  });

  it('an execution that has ended already keeps its record; the change is dropped', async () => {
    const store = new EtcdExecutionStore(kv, { recordBytes: 64 * KiB });
    const x = execution('ENDED');
    x.state = 'SUCCEEDED';
    x.reason = 'done';
    await store.create(x);
    const r = await store.update('ENDED', (y) => ((y.tasks[0]!.reason = 'x'.repeat(100 * KiB)), true));
    expect(r).toMatchObject({ changed: false, execution: { state: 'SUCCEEDED', reason: 'done' } });
    expect(r.refused).toMatch(/limits\.record_bytes/);
  });

  it('a create too large is refused alone; the creates written with it are recorded', async () => {
    const store = new EtcdExecutionStore(kv, { recordBytes: 1024 * KiB });
    const big = execution('NEW-BIG');
    big.args = { DATA: 'x'.repeat(300 * KiB) };
    const results = await Promise.allSettled([store.create(execution('NEW-A')), store.create(big), store.create(execution('NEW-C'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const err = (results[1] as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(err.message).toMatch(/^execution record is 300\.\d KiB, more than etcd takes/);
    expect(await store.get('NEW-BIG')).toBeUndefined();
    expect((await stored(store, 'NEW-C')).id).toBe('NEW-C');
  });
});
