// Executors' lease keep-alives against a real etcd: those of heartbeats that arrive together go
// out together on the one keep-alive stream, and each caller still gets the answer for its own
// lease — a live lease's TTL, 0 for one that is gone — and the lease stays alive.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kv } from '../../src/store/kv.js';
import { Leases } from '../../src/store/leases.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;
let leases: Leases;

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('leases')}/` });
  leases = new Leases(kv);
}, 60_000);

afterAll(async () => {
  leases?.close();
  kv?.close();
  await servers?.stop();
});

describe('lease keep-alives', () => {
  it('answers each of many keep-alives sent together for its own lease: its TTL, or 0 once it is gone', async () => {
    const short = await Promise.all(Array.from({ length: 20 }, () => leases.grant(30)));
    const long = await Promise.all(Array.from({ length: 20 }, () => leases.grant(120)));
    const gone = await leases.grant(30);
    await leases.revoke(gone);

    // All at once, one lease twice: every call is answered, and answers do not cross.
    const asked = [...short, ...long, gone, short[0]!];
    const ttls = await Promise.all(asked.map((id) => leases.keepAlive(id)));
    expect(ttls.slice(0, 20).every((t) => t > 20 && t <= 30)).toBe(true);
    expect(ttls.slice(20, 40).every((t) => t > 100 && t <= 120)).toBe(true);
    expect(ttls[40]).toBe(0);
    expect(ttls[41]).toBeGreaterThan(20);

    // The keep-alive reached etcd: each live lease is there, with its TTL renewed.
    const left = await kv.client.leaseClient.leaseTimeToLive({ ID: short[5]!, keys: false });
    expect(Number(left.TTL)).toBeGreaterThan(20);
    expect(Number(left.grantedTTL)).toBe(30);
  });
});
