// Admission control (src/util/admission.ts) and the registry's use of it: registrations are
// worked on a few at a time, in arrival order; a full queue refuses with UNAVAILABLE; a caller
// that goes away while waiting is dropped, and the calls behind it still run.

import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import { ExecutorRegistry } from '../../src/controller/executors.js';
import { UnavailableError } from '../../src/errors.js';
import { MemoryExecutorStore, MemoryLeases } from '../../src/store/memory.js';
import { Admission } from '../../src/util/admission.js';
import { createLogger } from '../../src/util/log.js';

const tick = () => new Promise((r) => setImmediate(r));

/** A task that runs until its `finish` is called, recording how many run at once. */
function gate() {
  let now = 0;
  let max = 0;
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  const task = (name: string) => () =>
    new Promise<string>((resolve) => {
      now++;
      max = Math.max(max, now);
      started.push(name);
      finishers.set(name, () => {
        now--;
        resolve(name);
      });
    });
  return { task, started, finish: (name: string) => finishers.get(name)!(), max: () => max };
}

describe('Admission', () => {
  it('runs at most `limit` at once and the rest in arrival order', async () => {
    const a = new Admission(2, 10, 'jobs');
    const g = gate();
    const done = ['a', 'b', 'c', 'd', 'e'].map((n) => a.run(g.task(n)));
    await tick();
    expect(g.started).toEqual(['a', 'b']);
    expect(a.queued).toBe(3);
    g.finish('b');
    await tick();
    expect(g.started).toEqual(['a', 'b', 'c']);
    for (const n of ['a', 'c', 'd', 'e']) {
      await tick();
      g.finish(n);
    }
    expect(await Promise.all(done)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(g.max()).toBe(2);
    expect(a.running).toBe(0);
  });

  it('refuses with UNAVAILABLE when the queue is full, saying how busy it is', async () => {
    const a = new Admission(1, 1, 'registrations');
    const g = gate();
    const first = a.run(g.task('a'));
    const second = a.run(g.task('b'));
    await expect(a.run(g.task('c'))).rejects.toThrow(UnavailableError);
    await expect(a.run(g.task('c'))).rejects.toThrow(/busy with 1 registrations and 1 more waiting; retry/);
    g.finish('a');
    await tick();
    g.finish('b');
    expect([await first, await second]).toEqual(['a', 'b']);
    expect(g.started).toEqual(['a', 'b']);
  });

  it('drops a waiting call whose caller went away, and still runs the ones behind it', async () => {
    const a = new Admission(1, 10, 'jobs');
    const g = gate();
    const first = a.run(g.task('a'));
    const gone = new AbortController();
    const dropped = a.run(g.task('b'), gone.signal);
    const third = a.run(g.task('c'));
    await tick();
    gone.abort();
    await expect(dropped).rejects.toThrow(/went away while waiting/);
    g.finish('a');
    await tick();
    expect(g.started).toEqual(['a', 'c']);
    g.finish('c');
    expect([await first, await third]).toEqual(['a', 'c']);
    expect(a.running).toBe(0);
    expect(a.queued).toBe(0);
  });

  it('frees the slot when the call throws', async () => {
    const a = new Admission(1, 10, 'jobs');
    await expect(a.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await a.run(async () => 'next')).toBe('next');
    expect(a.running).toBe(0);
  });

  it('takes back the slot of a call that overruns maxRunMs, says where it was, and runs the next', async () => {
    const a = new Admission(1, 10, 'registrations');
    const g = gate();
    // 'stuck' never finishes by itself, as a call waiting on a backend that never answers.
    const stuck = a.run(g.task('stuck'), undefined, { maxRunMs: 30, overrun: () => 'creating the record' });
    const next = a.run(g.task('next'));
    await tick();
    expect(g.started).toEqual(['stuck']);
    await expect(stuck).rejects.toThrow(/registrations took longer than 0.03 s \(at: creating the record\) and gave up its turn; retry/);
    await expect(stuck).rejects.toThrow(UnavailableError);
    await tick();
    expect(g.started).toEqual(['stuck', 'next']);
    expect(a.overran).toBe(1);
    g.finish('next');
    expect(await next).toBe('next');
    // The overrun call finishing late frees nothing twice.
    g.finish('stuck');
    await tick();
    expect(a.running).toBe(0);
    expect(await a.run(async () => 'after')).toBe('after');
    expect(a.running).toBe(0);
  });

  it('refuses an already aborted call without running it', async () => {
    const a = new Admission(1, 10, 'jobs');
    let ran = false;
    await expect(a.run(async () => (ran = true), AbortSignal.abort())).rejects.toThrow(UnavailableError);
    expect(ran).toBe(false);
  });
});

describe('ExecutorRegistry registrations', () => {
  function registry(concurrency: number, queue = 100, maxMs?: number) {
    const leases = new MemoryLeases();
    const store = new MemoryExecutorStore(leases);
    let inFlight = 0;
    let max = 0;
    const release: Array<() => void> = [];
    // Each registration holds at queue creation until released: how many are worked on at once shows.
    const bus = new MemoryBus();
    const queues = {
      ensureExecutorQueues: async (e: Parameters<MemoryBus['ensureExecutorQueues']>[0]) => {
        inFlight++;
        max = Math.max(max, inFlight);
        await new Promise<void>((r) => release.push(r));
        inFlight--;
        return bus.ensureExecutorQueues(e);
      },
      deleteExecutorQueue: bus.deleteExecutorQueue.bind(bus),
    };
    const reg = new ExecutorRegistry(store, leases, queues, { executorUser: async () => undefined, revoke: async () => {} }, {
      registrationTokens: [{ name: 'test', token: 'reg', groups: [] }],
      pingDeadlineSeconds: 30,
      natsAdvertise: [],
      registrationConcurrency: concurrency,
      registrationQueue: queue,
      ...(maxMs ? { registrationMaxMs: maxMs } : {}),
    }, createLogger({ level: 'error', name: 'test', write: () => {} }));
    const register = (name: string, signal?: AbortSignal) =>
      reg.register({ registrationToken: 'reg', name, groups: [], labels: {}, runners: ['host'], concurrency: 1, pingIntervalSeconds: 10, version: '1.0', replace: false }, signal);
    const releaseAll = async () => {
      while (release.length || inFlight) {
        for (const r of release.splice(0)) r();
        await tick();
      }
    };
    return { reg, store, register, releaseAll, inFlight: () => inFlight, max: () => max };
  }

  it('works on at most registration_concurrency at once; every one completes', async () => {
    const r = registry(3);
    const all = Array.from({ length: 20 }, (_, i) => r.register(`e${i}`));
    await tick();
    expect(r.inFlight()).toBe(3);
    await r.releaseAll();
    const out = await Promise.all(all);
    expect(new Set(out.map((o) => o.executorId)).size).toBe(20);
    expect(r.max()).toBe(3);
    expect((await r.store.list()).executors).toHaveLength(20);
  });

  it('does not register an executor whose caller went away while it waited', async () => {
    const r = registry(1);
    const first = r.register('first');
    const gone = new AbortController();
    const dropped = r.register('dropped', gone.signal);
    await tick();
    gone.abort();
    await expect(dropped).rejects.toThrow(UnavailableError);
    await r.releaseAll();
    await first;
    expect((await r.store.list()).executors.map((e) => e.name)).toEqual(['first']);
  });

  it('refuses with UNAVAILABLE beyond its queue, before any work', async () => {
    const r = registry(1, 2);
    const kept = ['a', 'b', 'c'].map((n) => r.register(n));
    await tick();
    await expect(r.register('d')).rejects.toThrow(/busy with 1 registrations and 2 more waiting/);
    await r.releaseAll();
    await Promise.all(kept);
    expect((await r.store.list()).executors.map((e) => e.name).sort()).toEqual(['a', 'b', 'c']);
  });

  it('answers UNAVAILABLE, naming the step, for a registration stuck past its time, and goes on with the others', async () => {
    const r = registry(1, 10, 50);
    const stuck = r.register('stuck');
    const next = r.register('next');
    // The first waits at queue creation, never released: it overruns and gives its turn to the next.
    await expect(stuck).rejects.toThrow(/took longer than 0.05 s \(at: creating its JetStream consumers\)/);
    await tick();
    expect(r.inFlight()).toBe(2);
    await r.releaseAll();
    expect((await next).executorId).toBeTruthy();
  });
});
