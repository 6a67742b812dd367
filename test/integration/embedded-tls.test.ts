// The embedded cluster with TLS files: etcd answers only over https and only to a client
// certificate, nats-server only over TLS, `openssl s_client` sees a certificate on each port, and
// a plaintext cluster left running on the same data dir is replaced by the TLS one, data intact.

import { join } from 'node:path';
import { connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsAuthority } from '../../src/bus/authority.js';
import { connectBus, type NatsUser } from '../../src/bus/connect.js';
import { startEmbeddedCluster, startNats, type EmbeddedCluster, type EmbeddedTls } from '../../src/embedded/index.js';
import { ConfigError, UnauthenticatedError, UnavailableError } from '../../src/errors.js';
import { Kv } from '../../src/store/kv.js';
import { issueClientCert, issueServerCert, makeCa } from '../harness/certs.js';
import { cleanupProcesses, tempDir } from '../harness/processes.js';
import { sClient } from '../harness/s-client.js';

let dir: string;
let tls: EmbeddedTls;
let user: NatsUser;
let authority: NatsAuthority;
let cluster: EmbeddedCluster;
const stops: Array<() => Promise<void>> = [];

const natsAuth = () => ({ serverConfig: (d: string) => authority.serverConfig(d), user });
const portOf = (url: string) => Number(new URL(url).port);

beforeAll(async () => {
  dir = tempDir('grid-embedded-tls-');
  const ca = makeCa(dir, 'grid');
  const server = issueServerCert(ca);
  const client = issueClientCert(ca, 'grid-controller');
  tls = { caFile: ca.caFile, serverCertFile: server.cert, serverKeyFile: server.key, clientCertFile: client.cert, clientKeyFile: client.key };
  authority = await NatsAuthority.open(join(dir, 'auth'), { create: true });
  const own = await authority.mintOwnUser('embedded-tls-test');
  user = { jwt: own.jwt, seed: own.seed };
  cluster = await startEmbeddedCluster({ dataDir: join(dir, 'data'), natsAuth: natsAuth(), tls });
  stops.push(() => cluster.stop());
});

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  await cleanupProcesses();
});

/** What Kv.check() throws with these endpoints and TLS files, or undefined when etcd answered. */
async function kvRefusal(endpoint: string, t = cluster.etcdTls): Promise<Error | undefined> {
  const kv = new Kv({ endpoints: [endpoint], prefix: '/grid-embedded-tls/', dialTimeoutMs: 3_000, ...(t ? { tls: t } : {}) });
  try {
    await kv.check();
    await kv.put(kv.key('probe'), 'ok');
    expect((await kv.get<string>(kv.key('probe')))?.value).toBe('ok');
    return undefined;
  } catch (err) {
    return err as Error;
  } finally {
    kv.close();
  }
}

describe('embedded cluster with TLS', () => {
  it('returns the https endpoint and what a client needs to connect', () => {
    expect(cluster.etcdEndpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(cluster.etcdTls).toEqual({ ca_file: tls.caFile, cert_file: tls.clientCertFile, key_file: tls.clientKeyFile });
    expect(cluster.natsTls).toEqual({ ca_file: tls.caFile, cert_file: '', key_file: '' });
  });

  it('etcd answers only over https and only to the client certificate', async () => {
    expect(await kvRefusal(cluster.etcdEndpoint)).toBeUndefined();
    const noCert = await kvRefusal(cluster.etcdEndpoint, { ...cluster.etcdTls!, cert_file: '', key_file: '' });
    expect(noCert).toBeInstanceOf(UnauthenticatedError);
    expect(noCert?.message).toContain('it requires a client certificate');
    const plain = await kvRefusal(cluster.etcdEndpoint.replace('https:', 'http:'), undefined);
    expect(plain).toBeInstanceOf(ConfigError);
    expect(plain?.message).toContain('speaks TLS on that port');
    // Not even the plaintext health endpoint answers.
    await expect(fetch(`${cluster.etcdEndpoint.replace('https:', 'http:')}/health`, { signal: AbortSignal.timeout(3_000) })).rejects.toThrow();
  });

  it('nats-server takes only TLS: a plaintext client that a server without TLS answers is cut off', async () => {
    // The same plaintext exchange against a nats-server without TLS gets its PONG.
    const open = await startNats({ dataDir: join(dir, 'open-nats') });
    stops.push(() => open.stop());
    const openTalk = await plaintextConnect(open.port);
    expect(openTalk.info.tls_required).toBeUndefined();
    expect(openTalk.reply).toContain('PONG');

    const talk = await plaintextConnect(portOf(cluster.natsUrl));
    expect(talk.info.tls_required).toBe(true);
    expect(talk.reply).not.toContain('PONG');
    expect(talk.closed).toBe(true);

    // GRID's client with the CA and its NATS user gets in; without the CA it is refused.
    const nc = await connectBus({ servers: [cluster.natsUrl], name: 'embedded-tls', user, tls: cluster.natsTls! });
    await nc.flush();
    await nc.close();
    const refused = await connectBus({ servers: [cluster.natsUrl], name: 'no-ca', user, connectTimeoutMs: 5_000 }).then(
      async (c) => void (await c.close()),
      (e: Error) => e,
    );
    expect(refused).toBeInstanceOf(UnavailableError);
  });

  it('openssl s_client sees the certificate on the etcd port, and on the NATS port after its plaintext INFO', async () => {
    const etcd = await sClient(portOf(cluster.etcdEndpoint), { caFile: tls.caFile, certFile: tls.clientCertFile, keyFile: tls.clientKeyFile });
    expect(etcd.output).toMatch(/^subject=CN = 127\.0\.0\.1$/m);
    expect(etcd.output).toContain('Verify return code: 0 (ok)');
    expect(etcd.code).toBe(0);

    // nats-server 2.9 speaks first, in plaintext: s_client straight at the port reads "INFO" as
    // a TLS record and gives up without a certificate.
    const direct = await sClient(portOf(cluster.natsUrl), { caFile: tls.caFile });
    expect(direct.code).not.toBe(0);
    expect(direct.output).toContain('no peer certificate available');
    const nats = await sClient(portOf(cluster.natsUrl), { caFile: tls.caFile, natsInfoFirst: true });
    expect(nats.natsInfo).toMatch(/^INFO \{.*"tls_required":true/);
    expect(nats.output).toMatch(/^subject=CN = 127\.0\.0\.1$/m);
    expect(nats.output).toContain('Verify return code: 0 (ok)');
  });

  it('replaces a plaintext cluster left running on its data dir, keeping etcd\'s data', async () => {
    const dataDir = join(dir, 'upgrade');
    // As if a controller of the plaintext kind had been killed with -9: never stopped.
    const old = await startEmbeddedCluster({ dataDir, natsAuth: natsAuth() });
    stops.push(() => old.stop());
    // A killed controller's supervision dies with it; this one's would start the pair again.
    await old.halt();
    const before = new Kv({ endpoints: [old.etcdEndpoint], prefix: '/grid-upgrade/' });
    await before.put(before.key('kept'), 'from the plaintext days');
    before.close();

    const next = await startEmbeddedCluster({ dataDir, natsAuth: natsAuth(), tls });
    stops.push(() => next.stop());
    await Promise.all([old.etcd.exited, old.nats.exited]); // the stale pair was stopped
    expect(next.etcdEndpoint).toBe(old.etcdEndpoint.replace('http:', 'https:')); // same port, now TLS
    const after = new Kv({ endpoints: [next.etcdEndpoint], prefix: '/grid-upgrade/', tls: next.etcdTls! });
    try {
      expect((await after.get<string>(after.key('kept')))?.value).toBe('from the plaintext days');
    } finally {
      after.close();
    }
  });
});

/** A plaintext NATS client: read INFO, send CONNECT and PING, and report what came back. */
function plaintextConnect(port: number): Promise<{ info: Record<string, unknown>; reply: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let text = '';
    let info: Record<string, unknown> | undefined;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      if (!info) return reject(new Error(`no INFO from NATS on ${port}: ${JSON.stringify(text)}`));
      resolve({ info, reply: text.slice(text.indexOf('\r\n') + 2), closed });
    };
    const timer = setTimeout(() => done(false), 5_000);
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      if (!info && text.includes('\r\n')) {
        info = JSON.parse(text.slice(5, text.indexOf('\r\n'))) as Record<string, unknown>;
        socket.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":false}\r\nPING\r\n');
      }
      if (text.includes('PONG')) done(false);
    });
    socket.on('error', () => done(true));
    socket.on('close', () => done(true));
  });
}
