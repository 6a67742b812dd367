// The controller on an external etcd with TLS, client certificates and authentication, set up
// through the etcd.* config keys: the right settings start it; a wrong CA, plaintext to the TLS
// port and a wrong password each stop it with one line on stderr (no stack) and a non-zero exit.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3, Range } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '../../src/embedded/index.js';
import { Kv } from '../../src/store/kv.js';
import { issueClientCert, issueServerCert, makeCa, type CertPair, type TestCa } from '../harness/certs.js';
import { cleanupProcesses, runProgram, startController, tempDir, writeControllerConfig, type RunResult } from '../harness/processes.js';
import { startServers, type TestServers } from '../harness/servers.js';

const PREFIX = '/grid-etcd-tls/';
const PASSWORD = 'grid-user-password-0000';

let servers: TestServers;
let dir: string;
let ca: TestCa;
let other: TestCa;
let client: CertPair;
let etcd: EtcdServer;
let passwordFile: string;

beforeAll(async () => {
  servers = await startServers(); // for NATS; its plaintext etcd is not used
  dir = tempDir('grid-controller-etcd-tls-');
  ca = makeCa(dir, 'grid');
  other = makeCa(dir, 'other');
  const server = issueServerCert(ca);
  client = issueClientCert(ca, 'grid-controller');
  etcd = await startEtcd({
    dataDir: join(dir, 'etcd'),
    tls: { caFile: ca.caFile, certFile: server.cert, keyFile: server.key, clientCertFile: client.cert, clientKeyFile: client.key },
  });
  // As the README says: a root user, a "grid" user whose role may read and write the prefix only.
  const admin = new Etcd3({ hosts: etcd.endpoint, credentials: { rootCertificate: readFileSync(ca.caFile), certChain: readFileSync(client.cert), privateKey: readFileSync(client.key) } });
  try {
    await admin.role('root').create();
    await admin.user('root').create('root-password-0000');
    await admin.user('root').addRole('root');
    const role = await admin.role('grid').create();
    await role.grant({ permission: 'Readwrite', range: Range.prefix(PREFIX) });
    await admin.user('grid').create(PASSWORD);
    await admin.user('grid').addRole('grid');
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
  passwordFile = join(dir, 'etcd-password');
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await cleanupProcesses();
  await etcd?.stop();
  await servers?.stop();
});

function etcdConfig(o: { endpoint?: string; ca?: string; password_file?: string } = {}) {
  return {
    endpoints: [o.endpoint ?? etcd.endpoint],
    prefix: PREFIX,
    tls: { ca_file: o.ca ?? ca.caFile, cert_file: client.cert, key_file: client.key },
    username: 'grid',
    password_file: o.password_file ?? passwordFile,
  };
}

/** `controller start` with this etcd section; it is expected to stop by itself. */
async function refusedStart(etcdSection: Record<string, unknown>): Promise<{ result: RunResult; line: string }> {
  const configFile = writeControllerConfig({ natsUrl: servers.natsUrl, etcdEndpoint: etcd.endpoint, prefix: PREFIX, extra: { etcd: etcdSection } });
  const result = await runProgram('controller', ['start', '--config', configFile, '--grpc-address', '127.0.0.1:0'], { timeoutMs: 30_000 });
  const context = JSON.stringify(result);
  expect(result.code, context).not.toBe(0);
  expect(result.stdout + result.stderr, context).not.toMatch(/^\s+at /m); // no stack trace
  expect(result.stderr, context).not.toContain('DeprecationWarning');
  const errors = result.stderr.split('\n').filter((l) => l.startsWith('controller: '));
  expect(errors, context).toHaveLength(1);
  console.log(`  ${errors[0]}`);
  return { result, line: errors[0]! };
}

describe('controller on etcd with TLS and a password', () => {
  it('starts with the right CA, client certificate and password (from a file)', async () => {
    const controller = await startController({
      natsUrl: servers.natsUrl,
      etcdEndpoint: etcd.endpoint,
      prefix: PREFIX,
      config: { etcd: etcdConfig() },
    });
    expect(controller.logs()).not.toContain('DeprecationWarning');
    // It is on etcd as user "grid": its instance record is under the prefix.
    const kv = new Kv({ endpoints: [etcd.endpoint], prefix: PREFIX, tls: etcdConfig().tls, auth: { username: 'grid', password: PASSWORD } });
    try {
      expect((await kv.list(kv.key('controllers/'))).length).toBeGreaterThan(0);
    } finally {
      kv.close();
    }
    await controller.stop();
  });

  it('a CA that did not sign etcd\'s certificate stops it with one line naming etcd.tls.ca_file', async () => {
    const { result, line } = await refusedStart(etcdConfig({ ca: other.caFile }));
    expect(result.code).toBe(1);
    expect(line).toBe(
      `controller: cannot reach etcd at ${etcd.endpoint}: its certificate is not signed by etcd.tls.ca_file (${other.caFile}); set etcd.tls.ca_file to the CA that signed etcd's certificate`,
    );
  });

  it('plaintext to the TLS port stops it with one line naming the https:// endpoint', async () => {
    const http = etcd.endpoint.replace('https:', 'http:');
    const { result, line } = await refusedStart({ endpoints: [http], prefix: PREFIX });
    expect(result.code).toBe(2); // a configuration error
    expect(line).toBe(
      `controller: config etcd.endpoints: etcd at ${http} speaks TLS on that port; use ${etcd.endpoint} and set etcd.tls.ca_file to the CA that signed etcd's certificate`,
    );
  });

  it('a wrong password stops it with one line naming the user', async () => {
    const wrong = join(dir, 'wrong-password');
    writeFileSync(wrong, 'not-the-password\n');
    const { result, line } = await refusedStart(etcdConfig({ password_file: wrong }));
    expect(result.code).toBe(1);
    expect(line).toBe(
      `controller: etcd at ${etcd.endpoint} refused user "grid": wrong user name or password; set etcd.username to an etcd user and etcd.password (or etcd.password_file) to its password`,
    );
  });
});
