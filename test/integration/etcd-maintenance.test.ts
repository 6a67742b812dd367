// etcd's database file against a real etcd: after data is deleted and compacted the file keeps
// its size, mostly free pages; the defragmenter sees that and gives the space back, and leaves a
// file that is mostly in use alone.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Defragmenter, etcdDbStatus, worthDefragmenting } from '../../src/store/etcd-maintenance.js';
import { Kv } from '../../src/store/kv.js';
import { createLogger } from '../../src/util/log.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('defrag')}/` });
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
});

const MiB = 1024 * 1024;

describe('defragmentation', () => {
  it('gives back the space of deleted, compacted data; leaves a full file alone', async () => {
    const policy = { minDbBytes: 4 * MiB, maxInUseRatio: 0.5 };
    const defrag = new Defragmenter({ kv, log: createLogger({ level: 'error' }), policy });
    const value = Buffer.alloc(64 * 1024, 'x').toString();
    for (let i = 0; i < 160; i++) await kv.client.put(kv.key('blob', String(i))).value(value);
    // The file grows when etcd's backend commits (every 100 ms, later on a busy machine).
    let full = await etcdDbStatus(kv);
    for (let i = 0; i < 50 && full.dbSize <= 8 * MiB; i++) {
      await new Promise((r) => setTimeout(r, 200));
      full = await etcdDbStatus(kv);
    }
    expect(full.dbSize).toBeGreaterThan(8 * MiB);
    expect((await defrag.check()).after).toBeUndefined();

    await kv.client.delete().prefix(kv.key('blob', ''));
    const { header } = await kv.client.kv.range({ key: Buffer.from(kv.key('none')) });
    await kv.client.kv.compact({ revision: header.revision, physical: true });
    // bbolt frees the pages on a later commit of etcd's backend: write a little until it has.
    let bloated = await etcdDbStatus(kv);
    for (let i = 0; i < 50 && !worthDefragmenting(bloated, policy); i++) {
      await kv.put(kv.key('tick'), i);
      await new Promise((r) => setTimeout(r, 200));
      bloated = await etcdDbStatus(kv);
    }
    expect(bloated.dbSize).toBeGreaterThanOrEqual(full.dbSize);
    expect(worthDefragmenting(bloated, policy), JSON.stringify({ full, bloated })).toBe(true);

    const { before, after } = await defrag.check();
    console.log(`etcd database: ${before.dbSize} bytes (${before.dbSizeInUse} in use) → ${after!.dbSize} bytes after defragmentation`);
    expect(after!.dbSize).toBeLessThan(before.dbSize / 2);
  }, 60_000);
});
