// TLS and authentication to etcd, as the controller's etcd.* keys configure them: a recording
// proxy reads a value put over plain http and nothing of it over TLS; a wrong CA, plaintext to the
// TLS port, a missing or foreign client certificate and a wrong password are each refused with one
// line naming what to set, and the right settings work.

import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '../../src/embedded/index.js';
import { ConfigError, GridError, PermissionDeniedError, UnauthenticatedError } from '../../src/errors.js';
import { Kv, type KvOptions } from '../../src/store/kv.js';
import { issueClientCert, issueServerCert, makeCa, type CertPair, type TestCa } from '../harness/certs.js';
import { cleanupProcesses, tempDir } from '../harness/processes.js';
import { recordingProxy } from '../harness/recording-proxy.js';
import { uniqueName } from '../harness/servers.js';

const MARKER = 'etcd-secret-marker-7f3a9c';
const PASSWORD = 'root-password-for-tests';

let dir: string;
let ca: TestCa;
let other: TestCa;
let client: CertPair;
let foreignClient: CertPair;
let plain: EtcdServer;
let tls: EtcdServer;
let withAuth: EtcdServer;

beforeAll(async () => {
  dir = tempDir('grid-etcd-tls-');
  ca = makeCa(dir, 'grid');
  other = makeCa(dir, 'other');
  const server = issueServerCert(ca);
  client = issueClientCert(ca, 'grid-controller');
  foreignClient = issueClientCert(other, 'grid-controller');
  const started = await Promise.all([
    startEtcd({ dataDir: join(dir, 'plain') }),
    startEtcd({
      dataDir: join(dir, 'tls'),
      tls: { caFile: ca.caFile, certFile: server.cert, keyFile: server.key, clientCertFile: client.cert, clientKeyFile: client.key },
    }),
    startEtcd({ dataDir: join(dir, 'auth') }),
  ]);
  [plain, tls, withAuth] = started;
  // Authentication on, through the client API as an operator would: a root user, a user without
  // any role, then auth enable.
  const admin = new Etcd3({ hosts: withAuth.endpoint });
  try {
    await admin.role('root').create();
    await admin.user('root').create(PASSWORD);
    await admin.user('root').addRole('root');
    await admin.user('nobody').create('nobody-password');
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
});

afterAll(async () => {
  await Promise.allSettled([plain?.stop(), tls?.stop(), withAuth?.stop()]);
  await cleanupProcesses();
});

const tlsFiles = (o: Partial<Record<'ca_file' | 'cert_file' | 'key_file', string>> = {}) => ({
  ca_file: ca.caFile,
  cert_file: client.cert,
  key_file: client.key,
  ...o,
});

/** kv.check() with these options: what it throws, or undefined when etcd answered. */
async function refusal(opts: Omit<KvOptions, 'prefix'>): Promise<GridError | undefined> {
  const kv = new Kv({ prefix: `/${uniqueName('tls')}/`, dialTimeoutMs: 3_000, ...opts });
  try {
    await kv.check();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(GridError);
    expect((err as Error).message.split('\n')).toHaveLength(1);
    console.log(`  ${(err as Error).message}`);
    return err as GridError;
  } finally {
    kv.close();
  }
}

describe('TLS to etcd', () => {
  it('a recording proxy reads a value put over http, and nothing of it over TLS', async () => {
    const put = async (opts: Omit<KvOptions, 'prefix'>) => {
      const kv = new Kv({ prefix: `/${uniqueName('proxy')}/`, ...opts });
      try {
        await kv.put(kv.key('secret'), { value: MARKER });
        expect((await kv.get<{ value: string }>(kv.key('secret')))?.value.value).toBe(MARKER);
      } finally {
        kv.close();
      }
    };
    const open = await recordingProxy(plain.clientPort);
    try {
      await put({ endpoints: [`http://127.0.0.1:${open.port}`] });
      expect(open.seen()).toContain(MARKER);
    } finally {
      await open.close();
    }
    const sealed = await recordingProxy(tls.clientPort);
    try {
      await put({ endpoints: [`https://127.0.0.1:${sealed.port}`], tls: tlsFiles() });
      expect(sealed.seen().length).toBeGreaterThan(1000);
      expect(sealed.seen()).not.toContain(MARKER);
    } finally {
      await sealed.close();
    }
  });

  it('the right CA and client certificate work', async () => {
    expect(await refusal({ endpoints: [tls.endpoint], tls: tlsFiles() })).toBeUndefined();
  });

  it('a certificate from another CA is refused, naming etcd.tls.ca_file', async () => {
    const err = await refusal({ endpoints: [tls.endpoint], tls: tlsFiles({ ca_file: other.caFile }) });
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err?.message).toBe(
      `cannot reach etcd at ${tls.endpoint}: its certificate is not signed by etcd.tls.ca_file (${other.caFile}); set etcd.tls.ca_file to the CA that signed etcd's certificate`,
    );
  });

  it('plaintext to the TLS port is refused, naming the https:// endpoint to use', async () => {
    const http = tls.endpoint.replace('https://', 'http://');
    const err = await refusal({ endpoints: [http] });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('etcd.endpoints');
    expect(err?.message).toBe(
      `config etcd.endpoints: etcd at ${http} speaks TLS on that port; use ${tls.endpoint} and set etcd.tls.ca_file to the CA that signed etcd's certificate`,
    );
  });

  it('TLS to a plaintext port is refused, naming the http:// endpoint', async () => {
    const https = plain.endpoint.replace('http://', 'https://');
    const err = await refusal({ endpoints: [https], tls: tlsFiles() });
    expect(err).toBeInstanceOf(ConfigError);
    expect(err?.message).toMatch(/^config etcd\.endpoints: etcd at https:\/\/127\.0\.0\.1:\d+ does not speak TLS on that port; use http:\/\/127\.0\.0\.1:\d+/);
  });

  it('without a client certificate etcd refuses, and the line says to set etcd.tls.cert_file', async () => {
    const err = await refusal({ endpoints: [tls.endpoint], tls: tlsFiles({ cert_file: '', key_file: '' }) });
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err?.message).toBe(
      `cannot reach etcd at ${tls.endpoint}: it requires a client certificate; set etcd.tls.cert_file and etcd.tls.key_file to a certificate signed by the CA etcd trusts (its --trusted-ca-file) and made for client authentication`,
    );
  });

  it('a client certificate from another CA is refused, naming the file', async () => {
    const err = await refusal({ endpoints: [tls.endpoint], tls: tlsFiles({ cert_file: foreignClient.cert, key_file: foreignClient.key }) });
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err?.message).toContain(`it refused the client certificate etcd.tls.cert_file (${foreignClient.cert}); set etcd.tls.cert_file and etcd.tls.key_file`);
  });
});

describe('authentication to etcd', () => {
  it('without credentials, etcd with auth on refuses and the line names etcd.username', async () => {
    const err = await refusal({ endpoints: [withAuth.endpoint] });
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err?.message).toBe(
      `etcd at ${withAuth.endpoint} requires authentication; set etcd.username and etcd.password (or etcd.password_file), or a client certificate (etcd.tls.cert_file) whose common name is an etcd user`,
    );
  });

  it('a wrong password is refused; the right one works', async () => {
    const err = await refusal({ endpoints: [withAuth.endpoint], auth: { username: 'root', password: 'not-the-password' } });
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err?.message).toBe(
      `etcd at ${withAuth.endpoint} refused user "root": wrong user name or password; set etcd.username to an etcd user and etcd.password (or etcd.password_file) to its password`,
    );
    expect(await refusal({ endpoints: [withAuth.endpoint], auth: { username: 'root', password: PASSWORD } })).toBeUndefined();
  });

  it('a user without a role on the prefix is refused, naming the prefix to grant', async () => {
    const err = await refusal({ endpoints: [withAuth.endpoint], auth: { username: 'nobody', password: 'nobody-password' } });
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect(err?.message).toMatch(/^etcd at \S+ refused user "nobody" access to \/tls-\w+\/; grant it a role with readwrite permission on the key prefix \/tls-\w+\/$/);
  });
});
