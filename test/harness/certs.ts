// Test certificates made with Debian's openssl: a CA, server certificates for loopback and client
// certificates signed by it. Shared by the TLS tests of NATS, etcd and the embedded cluster.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  /** PEM of the CA certificate. */
  caFile: string;
  caKeyFile: string;
  dir: string;
  name: string;
}

export interface CertPair {
  cert: string;
  key: string;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** A self-signed CA in `dir`, its files named after `name`. */
export function makeCa(dir: string, name: string): TestCa {
  const caFile = join(dir, `${name}-ca.pem`);
  const caKeyFile = join(dir, `${name}-ca.key`);
  openssl(['req', '-x509', ...KEY, '-keyout', caKeyFile, '-out', caFile, '-days', '1', '-subj', `/CN=${name} test CA`]);
  return { caFile, caKeyFile, dir, name };
}

function issue(ca: TestCa, file: string, cn: string, extensions: string): CertPair {
  const p = (ext: string) => join(ca.dir, `${ca.name}-${file}.${ext}`);
  openssl(['req', ...KEY, '-keyout', p('key'), '-out', p('csr'), '-subj', `/CN=${cn}`]);
  writeFileSync(p('cnf'), extensions);
  openssl(['x509', '-req', '-in', p('csr'), '-CA', ca.caFile, '-CAkey', ca.caKeyFile, '-CAcreateserial', '-out', p('pem'), '-days', '1', '-extfile', p('cnf')]);
  return { cert: p('pem'), key: p('key') };
}

/** A server certificate for 127.0.0.1 and localhost (nats.js checks a loopback IP against "localhost"). */
export function issueServerCert(ca: TestCa, file = 'server'): CertPair {
  return issue(ca, file, '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
}

/** A client certificate; etcd takes `cn` as the user name when authentication is on. */
export function issueClientCert(ca: TestCa, cn: string, file = `client-${cn}`): CertPair {
  return issue(ca, file, cn, 'extendedKeyUsage=clientAuth\n');
}

/** A CA and a server certificate for 127.0.0.1 signed by it. */
export function makeCerts(dir: string, name: string): { ca: string; cert: string; key: string } {
  const ca = makeCa(dir, name);
  const server = issueServerCert(ca);
  return { ca: ca.caFile, cert: server.cert, key: server.key };
}
