// A watch etcd leaves silent is noticed and read afresh (key-watch.ts). etcd before 3.4.32 can
// stop delivering a watch that fell behind without cancelling it (etcd-io/etcd#17529); which
// watch it strands depends on timing, so here a watch is made silent by hand, as that bug leaves
// one: still open in etcd, delivering nothing. The same checks on watches that deliver every
// change never break them.

import type { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchKeys, type KeyWatch, type WatchResumed } from '../../src/store/key-watch.js';
import { Kv } from '../../src/store/kv.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const CHECK_MS = 150;
let servers: TestServers;
let kv: Kv;
const resumed: WatchResumed[] = [];

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('silence')}/`, watchCheckMs: CHECK_MS, onWatchResumed: (e) => resumed.push(e) });
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
});

/** Stops the watcher in hand delivering anything, as etcd's slow-watcher bug does; etcd still has it open. */
function silence(w: KeyWatch): void {
  const raw = (w as unknown as { raw: EventEmitter }).raw;
  raw.removeAllListeners('put');
  raw.removeAllListeners('delete');
}

async function until(what: string, pred: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}

describe('a watch etcd leaves silent', () => {
  it('one key: the change it did not deliver is read afresh within two checks, with one report, and later changes follow', async () => {
    const key = kv.key('one', 'x');
    await kv.put(key, 'v0');
    const values: string[] = [];
    const w = watchKeys(kv, { key, onPut: (e) => values.push(e.value.toString()), onSnapshot: (kvs) => values.push(kvs[0]?.value.toString() ?? '') });
    await w.ready;
    await kv.put(key, 'v1');
    await until('v1 by the watch', () => values.includes('"v1"'));
    const before = resumed.length;
    silence(w);
    await kv.put(key, 'v2');
    const at = Date.now();
    await until('v2, read afresh', () => values.includes('"v2"'));
    const took = Date.now() - at;
    expect(resumed.slice(before).map((e) => [e.what, e.cause])).toEqual([['one/x', 'silent']]);
    // It waited a whole check for the change to arrive before calling the watch silent.
    expect(took).toBeGreaterThanOrEqual(CHECK_MS);
    await kv.put(key, 'v3');
    await until('v3 by the new watch', () => values.includes('"v3"'));
    await w.close();
  });

  it('a prefix opted in: the same; a prefix not opted in and a watch of deletes only are left as they are', async () => {
    const checked: string[] = [];
    const unchecked: string[] = [];
    const deletes: string[] = [];
    const a = watchKeys(kv, { key: kv.key('pa', ''), prefix: true, check: true, onPut: (e) => checked.push(e.value.toString()), onSnapshot: (kvs, _r, again) => again && checked.push(...kvs.map((k) => k.value.toString())) });
    const b = watchKeys(kv, { key: kv.key('pb', ''), prefix: true, onPut: (e) => unchecked.push(e.value.toString()) });
    const c = watchKeys(kv, { key: kv.key('pc', ''), prefix: true, only: 'delete', check: true, onDelete: (e) => deletes.push(e.key.toString()) });
    await Promise.all([a.ready, b.ready, c.ready]);
    const before = resumed.length;
    for (const w of [a, b, c]) silence(w);
    await kv.put(kv.key('pa', 'k1'), 'a1');
    await kv.put(kv.key('pb', 'k1'), 'b1');
    await kv.put(kv.key('pc', 'k1'), 'c1');
    await kv.delete(kv.key('pc', 'k1'));
    await until('a1, read afresh', () => checked.includes('"a1"'));
    await delay(CHECK_MS * 4);
    expect(resumed.slice(before).map((e) => [e.what, e.cause])).toEqual([['pa/*', 'silent']]);
    expect([unchecked, deletes]).toEqual([[], []]);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('watches that deliver every change, under a steady stream of changes, are never taken for silent', async () => {
    const key = kv.key('busy', 'x');
    const got: number[] = [];
    const one = watchKeys(kv, { key, onPut: (e) => got.push(Number(e.value.toString())) });
    const many = watchKeys(kv, { key: kv.key('busy', ''), prefix: true, check: true, onPut: () => {} });
    await Promise.all([one.ready, many.ready]);
    const before = resumed.length;
    const end = Date.now() + CHECK_MS * 12;
    let i = 0;
    while (Date.now() < end) await kv.put(key, ++i);
    await until(`all ${i} changes`, () => got.at(-1) === i);
    expect(resumed.slice(before)).toEqual([]);
    expect(got).toEqual(Array.from({ length: i }, (_, n) => n + 1));
    await Promise.all([one.close(), many.close()]);
  });
});
