// Kv against a real etcd: paged reads of a large prefix return every key once, in order.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kv } from '../../src/store/kv.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('kv')}/` });
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
});

describe('rangeAll', () => {
  it('reads a prefix in pages: every key once, in order, nothing from outside the prefix', async () => {
    const prefix = kv.key('many', '');
    const keys = Array.from({ length: 1203 }, (_, i) => `${prefix}${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 100) await Promise.all(keys.slice(i, i + 100).map((k) => kv.client.put(k).value('x').exec()));
    await kv.client.put(kv.key('many-not', 'x')).value('outside').exec();
    const { kvs } = await kv.rangeAll(prefix, 100);
    expect(kvs.map((k) => k.key.toString())).toEqual(keys);
  });
});
