// Executions over time, against a real etcd: lists by job and by state read index entries and
// the records they show, not every record; pages follow one another with a cursor, newest
// first; retention deletes finished executions past the age and beyond the count, with their
// index entries, and records what it pruned; records written before the indexes get them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Execution, ExecutionState } from '../../src/domain/execution.js';
import { Retention } from '../../src/controller/retention.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Kv } from '../../src/store/kv.js';
import { idAt } from '../../src/util/ids.js';
import { createLogger } from '../../src/util/log.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
const clients: Kv[] = [];
const log = createLogger({ level: 'error', name: 'test' });

beforeAll(async () => {
  servers = await startServers();
});

afterAll(async () => {
  for (const kv of clients) kv.close();
  await servers?.stop();
});

function fresh(): { kv: Kv; store: EtcdExecutionStore } {
  const kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('ret')}/` });
  clients.push(kv);
  return { kv, store: new EtcdExecutionStore(kv) };
}

function execution(job: string, state: ExecutionState, createdAt = Date.now()): Execution {
  return {
    id: idAt(createdAt), job, job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'me', state, reason: '',
    created_at_ms: createdAt, updated_at_ms: createdAt, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
    tasks: [],
  };
}

/** Creates executions as RUNNING, then ends those meant to be finished: both write paths. */
async function seed(store: EtcdExecutionStore, specs: Array<{ job: string; state: ExecutionState; createdAt?: number }>): Promise<Execution[]> {
  const base = Date.now() - specs.length;
  const xs = specs.map((s, i) => execution(s.job, 'RUNNING', s.createdAt ?? base + i));
  await Promise.all(xs.map((x) => store.create(x)));
  const ends = new Map(xs.map((x, i) => [x.id, specs[i]!.state]));
  await store.updateMany(
    xs.filter((x) => ends.get(x.id) !== 'RUNNING').map((x) => x.id),
    (x) => ((x.state = ends.get(x.id)!), true),
  );
  return xs.map((x) => ({ ...x, state: ends.get(x.id)! }));
}

const ids = (xs: Execution[]) => xs.map((x) => x.id);
const newestFirst = (xs: Execution[]) => [...xs].sort((a, b) => (a.id < b.id ? 1 : -1));

describe('lists through indexes', () => {
  it('by state and by job: reads the index entries and the records shown, not the rest', async () => {
    const { store } = fresh();
    const specs = Array.from({ length: 600 }, (_, i) => ({ job: i % 3 === 0 ? 'backup' : 'deploy', state: (i % 50 === 0 ? 'FAILED' : 'SUCCEEDED') as ExecutionState }));
    const xs = await seed(store, specs);
    const failed = newestFirst(xs.filter((x) => x.state === 'FAILED'));

    const page = await store.list({ state: 'FAILED', limit: 5 });
    expect(ids(page.executions)).toEqual(ids(failed.slice(0, 5)));
    // 6 FAILED index entries read (one more than shown: is there a next page?) and 5 records:
    // nothing near the 600 records.
    expect(page.keysRead).toBe(6 + 5);
    console.log(`executions list --state FAILED --limit 5 over ${xs.length} executions (${failed.length} FAILED): ${page.keysRead} keys read`);

    const next = await store.list({ state: 'FAILED', limit: 5, before: page.next });
    expect(ids(next.executions)).toEqual(ids(failed.slice(5, 10)));
    const last = await store.list({ state: 'FAILED', limit: 5, before: next.next });
    expect(ids(last.executions)).toEqual(ids(failed.slice(10)));
    expect(last.next).toBe('');

    const backupFailed = failed.filter((x) => x.job === 'backup');
    expect(ids((await store.list({ state: 'FAILED', job: 'backup', limit: 100 })).executions)).toEqual(ids(backupFailed));
    const backups = newestFirst(xs.filter((x) => x.job === 'backup'));
    const byJob = await store.list({ job: 'backup', limit: 7 });
    expect(ids(byJob.executions)).toEqual(ids(backups.slice(0, 7)));
    expect(byJob.keysRead).toBeLessThan(150);
  });

  it('an unfinished state from the active entries; a state change moves the index entry', async () => {
    const { store } = fresh();
    const [a, b, c] = await seed(store, [
      { job: 'j', state: 'RUNNING' },
      { job: 'k', state: 'RUNNING' },
      { job: 'j', state: 'FAILED' },
    ]);
    expect(ids((await store.list({ state: 'RUNNING', limit: 10 })).executions)).toEqual([b!.id, a!.id]);
    expect(ids((await store.list({ state: 'RUNNING', job: 'j', limit: 10 })).executions)).toEqual([a!.id]);
    // A late result turns FAILED into SUCCEEDED: the execution moves from one list to the other.
    await store.update(c!.id, (x) => ((x.state = 'SUCCEEDED'), true));
    expect(ids((await store.list({ state: 'FAILED', limit: 10 })).executions)).toEqual([]);
    expect(ids((await store.list({ state: 'SUCCEEDED', limit: 10 })).executions)).toEqual([c!.id]);
  });

  it('records written before the indexes existed are indexed once at start', async () => {
    const { kv, store } = fresh();
    const old = [execution('legacy', 'FAILED'), execution('legacy', 'SUCCEEDED')];
    for (const x of old) await kv.put(store.key(x.id), x);
    expect((await store.list({ state: 'FAILED', limit: 10 })).executions).toEqual([]);
    await store.backfillIndexes(log);
    expect(ids((await store.list({ state: 'FAILED', limit: 10 })).executions)).toEqual([old[0]!.id]);
    expect(ids((await store.list({ job: 'legacy', limit: 10 })).executions)).toEqual(ids(newestFirst(old)));
  });
});

describe('retention', () => {
  it('deletes the oldest finished beyond the count and those past the age, with their index entries; keeps the unfinished', async () => {
    const { store } = fresh();
    const now = Date.now();
    const day = 86_400_000;
    const xs = await seed(store, [
      ...Array.from({ length: 5 }, () => ({ job: 'old', state: 'SUCCEEDED' as const, createdAt: now - 10 * day })),
      { job: 'old', state: 'RUNNING', createdAt: now - 10 * day },
      ...Array.from({ length: 30 }, (_, i) => ({ job: 'new', state: (i % 2 ? 'FAILED' : 'SUCCEEDED') as ExecutionState, createdAt: now - 1000 + i })),
    ]);
    const retention = new Retention({ store, policy: { maxAgeMs: 7 * day, maxFinished: 20 }, log });
    expect((await retention.status()).pruned_before_ms).toBe(0);

    expect(await retention.pass()).toBe(15);
    const finished = xs.filter((x) => x.state !== 'RUNNING');
    const kept = newestFirst(finished).slice(0, 20);
    expect(await store.countFinished()).toBe(20);
    expect(ids((await store.list({ limit: 100 })).executions)).toEqual(ids(newestFirst([...kept, xs[5]!])));
    expect((await store.list({ job: 'old', limit: 100 })).executions.map((x) => x.state)).toEqual(['RUNNING']);
    const prunedNewest = newestFirst(finished)[20]!;
    expect((await retention.status()).pruned_before_ms).toBe(prunedNewest.created_at_ms);
    // No stray index entries: each state list holds exactly what is kept.
    for (const state of ['SUCCEEDED', 'FAILED'] as const) {
      expect(ids((await store.list({ state, limit: 100 })).executions)).toEqual(ids(kept.filter((x) => x.state === state)));
    }
    expect(await retention.pass()).toBe(0);
  });
});
