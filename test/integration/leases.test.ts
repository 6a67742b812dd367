// Executors' lease keep-alives against a real etcd: those of heartbeats that arrive together go
// out together on the keep-alive streams, and each caller still gets the answer for its own
// lease — a live lease's TTL, 0 for one that is gone — and the lease stays alive. An etcd that
// does not answer is an error, never a 0 (a 0 makes the controller take a new lease), and the
// streams recover once it answers again.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../src/errors.js';
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

  it('spreads leases over its streams and answers each, with one stream or several', async () => {
    const one = new Leases(kv, 1);
    try {
      const ids = await Promise.all(Array.from({ length: 200 }, () => leases.grant(60)));
      for (const l of [leases, one]) {
        const ttls = await Promise.all(ids.map((id) => l.keepAlive(id)));
        expect(ttls.every((t) => t > 50 && t <= 60)).toBe(true);
      }
    } finally {
      one.close();
    }
  });

  it('fails a keep-alive etcd does not answer in time instead of calling the lease gone, and recovers', async () => {
    const id = await leases.grant(60);
    expect(await leases.keepAlive(id)).toBeGreaterThan(50);
    process.kill(servers.etcdPid, 'SIGSTOP');
    let outcome: unknown;
    try {
      outcome = await leases.keepAlive(id).then((ttl) => ({ ttl }), (err: Error) => err);
    } finally {
      process.kill(servers.etcdPid, 'SIGCONT');
    }
    expect(outcome).toBeInstanceOf(UnavailableError);
    expect((outcome as Error).message).toMatch(/did not answer a lease keep-alive in time/);
    // A new stream: the lease is still there and is renewed.
    expect(await leases.keepAlive(id)).toBeGreaterThan(50);
  }, 30_000);
});
