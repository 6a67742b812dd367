// Execution records too large to store, against a real etcd whose request limit is small
// (--max-request-bytes 256 KiB): one such record in a group commit fails its execution alone,
// with the reason, and every other record of the batch is written; nothing is retried forever.
// Large records are stored compressed, so the oversized text here is random (base64 of random
// bytes compresses to about three quarters). Then, against etcd's default request limit: a
// fan-out over as many executors as tasks_per_execution allows is recorded, where its JSON
// alone is refused.

import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Execution, Task } from '../../src/domain/execution.js';
import { LIMIT_DEFAULTS } from '../../src/domain/limits.js';
import { LimitExceededError } from '../../src/errors.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { COMPRESS_FROM_BYTES } from '../../src/store/execution-codec.js';
import { isTooLarge, Kv } from '../../src/store/kv.js';
import { idAt } from '../../src/util/ids.js';
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

/** `chars` of text that does not compress much (random base64). */
function noise(chars: number): string {
  return randomBytes(Math.ceil((chars * 3) / 4)).toString('base64').slice(0, chars);
}

/** What a task's result adds to a record; `bytes` of reason. */
function finish(x: Execution, bytes: number): true {
  x.tasks[0]!.state = 'FAILED';
  x.tasks[0]!.reason = bytes > 100 ? noise(bytes) : 'x'.repeat(bytes);
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
    const res = await store.updateMany(ids, (x) => finish(x, x.id === 'BIG-B' ? 400 * KiB : 10));

    for (const id of ['BIG-A', 'BIG-C']) {
      expect(res.get(id)).toMatchObject({ changed: true });
      expect(res.get(id)!.refused).toBeUndefined();
      expect((await stored(store, id)).tasks[0]!.reason).toBe('x'.repeat(10));
    }
    const b = await stored(store, 'BIG-B');
    expect(b.state).toBe('FAILED');
    expect(b.reason).toMatch(/^execution record is 3\d\d(\.\d)? KiB, more than etcd takes in one request \(its --max-request-bytes\); limits\.record_bytes \(1 MiB\) should be below that$/);
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
    expect((await stored(store, 'OVER-A')).reason).toMatch(/^execution record is [7-9]\d(\.\d)? KiB; the limit is 64 KiB \(limits\.record_bytes\)$/);
    expect(res.get('OVER-A')?.refused).toBeDefined();
    expect((await stored(store, 'OVER-B')).tasks[0]!.reason).toBe('x'.repeat(10));
  });

  it('an execution that has ended already keeps its record; the change is dropped', async () => {
    const store = new EtcdExecutionStore(kv, { recordBytes: 64 * KiB });
    const x = execution('ENDED');
    x.state = 'SUCCEEDED';
    x.reason = 'done';
    await store.create(x);
    const r = await store.update('ENDED', (y) => ((y.tasks[0]!.reason = noise(100 * KiB)), true));
    expect(r).toMatchObject({ changed: false, execution: { state: 'SUCCEEDED', reason: 'done' } });
    expect(r.refused).toMatch(/limits\.record_bytes/);
  });

  it('a create too large is refused alone; the creates written with it are recorded', async () => {
    const store = new EtcdExecutionStore(kv, { recordBytes: 1024 * KiB });
    const big = execution('NEW-BIG');
    big.args = { DATA: noise(400 * KiB) };
    const results = await Promise.allSettled([store.create(execution('NEW-A')), store.create(big), store.create(execution('NEW-C'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const err = (results[1] as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(err.message).toMatch(/^execution record is 3\d\d(\.\d)? KiB, more than etcd takes/);
    expect(await store.get('NEW-BIG')).toBeUndefined();
    expect((await stored(store, 'NEW-C')).id).toBe('NEW-C');
  });
});

describe('a fan-out over every executor tasks_per_execution allows, against etcd\'s default request limit', () => {
  const etcdDefault = LIMIT_DEFAULTS.record_bytes; // etcd's own default --max-request-bytes, 1.5 MiB
  let big: TestServers;
  let bigKv: Kv;

  beforeAll(async () => {
    big = await startServers({ etcdMaxRequestBytes: etcdDefault });
    bigKv = new Kv({ endpoints: [big.etcdEndpoint], prefix: `/${uniqueName('fanout')}/` });
  });

  afterAll(async () => {
    bigKv?.close();
    await big?.stop();
  });

  it('is recorded from creation to every task finished, read back whole, though its JSON alone is more than etcd takes', async () => {
    const n = LIMIT_DEFAULTS.tasks_per_execution;
    const t0 = Date.now() - 3_600_000;
    // Executor ids as registration makes them, one a few hundred ms apart: each with its own random part.
    const tasks: Task[] = Array.from({ length: n }, (_, i) => {
      const id = idAt(t0 + i * 300);
      return { key: id, executor_id: id, executor_name: `edge-${String(i).padStart(5, '0')}.example.net`, state: 'PENDING', attempts: 0, started_at_ms: 0, finished_at_ms: 0, reason: '', wave: 0 };
    });
    const store = new EtcdExecutionStore(bigKv); // limits.record_bytes at its default
    await store.create(executionRecord('FANOUT', { tasks, state: 'DISPATCHED' }));
    const now = Date.now();
    const res = await store.update('FANOUT', (x) => {
      x.tasks.forEach((t, i) => Object.assign(t, { state: 'SUCCEEDED', attempts: 1, claim_session: idAt(now - 5_000 + (i % 7)), exit_code: 0, started_at_ms: now + i, finished_at_ms: now + i + 4, reason: 'exit 0' }));
      x.state = 'SUCCEEDED';
      x.finished_at_ms = now + n + 4;
      return true;
    });
    expect(res.refused).toBeUndefined();

    // Read back by a store that never saw it (no copy of its own): every task as written.
    const back = (await new EtcdExecutionStore(bigKv).get('FANOUT'))!.value;
    expect(back.state).toBe('SUCCEEDED');
    expect(back.tasks).toHaveLength(n);
    expect(back.tasks).toEqual(res.execution.tasks);

    // What the store wrote fits etcd's default limit; the same record as plain JSON does not.
    const etcd = new Etcd3({ hosts: big.etcdEndpoint });
    try {
      const key = bigKv.key('executions', 'FANOUT');
      const stored = (await etcd.get(key).buffer())!;
      const json = JSON.stringify(back);
      expect(json.length).toBeGreaterThan(etcdDefault);
      expect(stored.length).toBeLessThan(etcdDefault / 2);
      expect(stored.length).toBeGreaterThan(COMPRESS_FROM_BYTES);
      const plain = await etcd.put(`${key}-plain`).value(json).then(() => undefined, (err: unknown) => err);
      expect(isTooLarge(plain)).toBe(true);
    } finally {
      etcd.close();
    }
  }, 60_000);
});
