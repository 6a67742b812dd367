// A connection to etcd that stops moving, with the socket still open: the peer stopped reading
// (Node's HTTP/2 over TLS can stop reading its own socket for good while a write is pending, a
// Node bug seen with 10,000 executors; or a middlebox dropped the flow without a reset). No byte
// errs, so without a check every call on it waited forever, leases lapsed and the controller
// stood still. gRPC keepalive pings notice the silence: the connection is dropped, its calls fail
// as UNAVAILABLE, and the next call goes over a new connection. Against a real etcd, through a
// proxy that stops forwarding the connections open at one moment.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../src/errors.js';
import { Kv } from '../../src/store/kv.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { stallProxy, type StallProxy } from '../harness/stall-proxy.js';

/** etcd refuses pings more often than every 5 s (its --grpc-keepalive-min-time). */
const KEEPALIVE_MS = 5_000;

let servers: TestServers;
let proxy: StallProxy;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers();
  proxy = await stallProxy(Number(new URL(servers.etcdEndpoint).port));
  kv = new Kv({ endpoints: [proxy.endpoint], prefix: `/${uniqueName('keepalive')}/`, keepaliveMs: KEEPALIVE_MS });
}, 60_000);

afterAll(async () => {
  kv?.close();
  await proxy?.close();
  await servers?.stop();
});

describe('an etcd connection that goes silent', () => {
  it('is dropped by the keepalive: the call on it fails as unavailable, and the next one goes over a new connection', async () => {
    await kv.put(kv.key('k'), { n: 1 });
    const connections = proxy.accepted;
    proxy.stallOpen();
    const outcome = await kv.get<{ n: number }>(kv.key('k')).then(
      (v) => ({ value: v?.value }),
      (err: unknown) => ({ error: err }),
    );
    // Failed (or, after etcd3's own retry on the new connection, answered): not left waiting.
    if ('error' in outcome) expect(outcome.error).toBeInstanceOf(UnavailableError);
    else expect(outcome.value).toEqual({ n: 1 });
    await expect.poll(async () => (await kv.get<{ n: number }>(kv.key('k')).catch(() => undefined))?.value, { timeout: 30_000, interval: 500 }).toEqual({ n: 1 });
    expect(proxy.accepted).toBeGreaterThan(connections);
  }, 60_000);
});
