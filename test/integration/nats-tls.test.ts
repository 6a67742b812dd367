// TLS to NATS, as configured on the controller (nats.tls) and executors (nats_tls): a recording
// proxy between client and server reads what is published when the link is plain, and nothing of
// it once it is TLS; a client that does not trust the server's CA is refused.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsAuthority } from '../../src/bus/authority.js';
import { connectBus, type NatsUser } from '../../src/bus/connect.js';
import { startNats, type NatsServer } from '../../src/embedded/index.js';
import { makeCerts } from '../harness/certs.js';
import { tempDir, cleanupProcesses } from '../harness/processes.js';
import { recordingProxy } from '../harness/recording-proxy.js';

const MARKER = 'secret-argument-hunter2';

let dir: string;
let user: NatsUser;
let plain: NatsServer;
let tls: NatsServer;
let caFile: string;
let otherCaFile: string;

beforeAll(async () => {
  dir = tempDir('grid-nats-tls-');
  const authority = await NatsAuthority.open(join(dir, 'auth'), { create: true });
  const own = await authority.mintOwnUser('tls-test');
  user = { jwt: own.jwt, seed: own.seed };
  const certs = makeCerts(dir, 'grid');
  caFile = certs.ca;
  otherCaFile = makeCerts(dir, 'other').ca;
  const auth = async (name: string) => ({ config: await authority.serverConfig(join(dir, name, 'jwt')), user });
  plain = await startNats({ dataDir: join(dir, 'plain'), auth: await auth('plain') });
  tls = await startNats({ dataDir: join(dir, 'tls'), auth: await auth('tls'), tls: { cert_file: certs.cert, key_file: certs.key, ca_file: certs.ca } });
});

afterAll(async () => {
  await Promise.allSettled([plain?.stop(), tls?.stop()]);
  await cleanupProcesses();
});

async function publishThrough(proxyPort: number, withTls: boolean): Promise<void> {
  const nc = await connectBus({
    servers: [`nats://127.0.0.1:${proxyPort}`],
    name: 'tls-test',
    user,
    ...(withTls ? { tls: { ca_file: caFile, cert_file: '', key_file: '' } } : {}),
  });
  nc.publish('grid.test.secret', new TextEncoder().encode(MARKER));
  await nc.flush();
  await nc.close();
}

describe('TLS to NATS', () => {
  it('without TLS a recording proxy reads what is published; with TLS it does not', async () => {
    const open = await recordingProxy(plain.port);
    try {
      await publishThrough(open.port, false);
      expect(open.seen()).toContain(MARKER);
    } finally {
      await open.close();
    }
    const sealed = await recordingProxy(tls.port);
    try {
      await publishThrough(sealed.port, true);
      expect(sealed.seen().length).toBeGreaterThan(0);
      expect(sealed.seen()).not.toContain(MARKER);
      expect(sealed.seen()).not.toContain(user.jwt.slice(0, 40)); // nor the credentials
    } finally {
      await sealed.close();
    }
  });

  it('a client that does not trust the server\'s CA is refused with one line', async () => {
    const err = await connectBus({
      servers: [tls.url],
      name: 'wrong-ca',
      user,
      tls: { ca_file: otherCaFile, cert_file: '', key_file: '' },
      connectTimeoutMs: 5000,
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+: .+$/);
    expect(err?.message).toMatch(/set the CA that signed the NATS servers. certificate \(controller: nats\.tls\.ca_file; executor: nats_tls\.ca_file/);
    expect(err?.message.split('\n')).toHaveLength(1);
    console.log(`  wrong CA: ${err?.message}`);
  });
});
