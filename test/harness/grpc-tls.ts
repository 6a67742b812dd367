// The test controllers' gRPC TLS: one CA per test process (made with Debian's openssl, as an
// operator would bring their own), given to every controller the harness starts as its CA, and
// to every client and executor as the CA to verify the controller with.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientTls } from '../../src/tls/grpc.js';
import { newClientKey } from '../../src/tls/keys.js';
import { newUserKey } from '../../src/bus/authority.js';
import { GridClient } from '../../src/client/client.js';
import type { RegisterResponse } from '../../src/gen/grid/v1/executor.js';
import { atExit } from './exit-hook.js';
import { makeCa } from './certs.js';

export interface TestCa {
  certFile: string;
  keyFile: string;
  pem: string;
}

let ca: TestCa | undefined;

/** The CA of this test process's controllers (ECDSA P-256, PKCS#8 key, as GRID's CA loader takes). */
export function testCa(): TestCa {
  if (ca) return ca;
  const dir = mkdtempSync(join(tmpdir(), 'grid-test-ca-'));
  atExit(() => rmSync(dir, { recursive: true, force: true }));
  const made = makeCa(dir, 'grid-grpc');
  const certFile = made.caFile;
  const keyFile = made.caKeyFile;
  ca = { certFile, keyFile, pem: readFileSync(certFile, 'utf8') };
  return ca;
}

/** The controller config keys that make a test controller use the test CA. */
export function controllerTlsConfig(): Record<string, unknown> {
  const { certFile, keyFile } = testCa();
  return { ca_cert_file: certFile, ca_key_file: keyFile };
}

/**
 * How an in-process client reaches a test controller: verified by the test CA, and with an
 * executor's client certificate when given its state (what `executor register` saved).
 */
export function testClientTls(executor?: { tls_cert?: string; tls_key?: string }, caFile?: string): ClientTls {
  return {
    caPem: caFile ? readFileSync(caFile, 'utf8') : testCa().pem,
    ...(executor?.tls_cert && executor.tls_key ? { certPem: executor.tls_cert, keyPem: executor.tls_key } : {}),
  };
}

export interface DirectRegistration {
  res: RegisterResponse;
  /** A client that calls as this executor: the test CA and its new client certificate. */
  client: GridClient;
  /** Its NATS user key (the seed stays here, as on a real executor). */
  natsKey: ReturnType<typeof newUserKey>;
}

/**
 * Registers an executor by calling Register directly (no executor process): makes its NATS and
 * TLS keys as `executor register` does, and returns a client holding the issued certificate.
 */
export async function registerDirect(
  address: string,
  o: {
    name: string;
    registrationToken: string;
    groups?: string[];
    runners?: string[];
    concurrency?: number;
    natsKey?: ReturnType<typeof newUserKey>;
    /** The controller's CA when it is not the test CA (an embedded controller's own). */
    caFile?: string;
  },
): Promise<DirectRegistration> {
  const natsKey = o.natsKey ?? newUserKey();
  const tlsKey = await newClientKey();
  const bootstrap = new GridClient({ address, timeoutMs: 10_000, tls: testClientTls(undefined, o.caFile) });
  try {
    const res = await bootstrap.call(bootstrap.executors, bootstrap.executors.register, {
      registrationToken: o.registrationToken, name: o.name, groups: o.groups ?? [], labels: {}, runners: o.runners ?? ['host'],
      concurrency: o.concurrency ?? 1, pingIntervalSeconds: 5, version: 'test', replace: false, executorId: '', executorSecret: '',
      natsUserKey: natsKey.publicKey, replaceSecret: '', tlsPublicKey: tlsKey.publicKeyPem,
    });
    const client = new GridClient({ address, timeoutMs: 10_000, tls: testClientTls({ tls_cert: res.tlsCertificate, tls_key: tlsKey.keyPem }, o.caFile) });
    return { res, client, natsKey };
  } finally {
    bootstrap.close();
  }
}
