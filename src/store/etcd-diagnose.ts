// Why etcd cannot be reached, in one line that says what to configure. gRPC reports every TLS
// failure as the same UNAVAILABLE; a TLS handshake of our own tells them apart by its error code.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect as tlsConnect, rootCertificates, type ConnectionOptions } from 'node:tls';
import { ConfigError, UnauthenticatedError, type GridError } from '../errors.js';

/** PEM files for TLS to etcd ("" = not used); the keys are etcd.tls.* in the controller config. */
export interface EtcdTls {
  /** The CA that signed etcd's certificate ("" = the system's CAs). */
  ca_file: string;
  /** Client certificate and key, when etcd requires one (--client-cert-auth). */
  cert_file: string;
  key_file: string;
}

export const NO_TLS: EtcdTls = { ca_file: '', cert_file: '', key_file: '' };

/** What a handshake with the endpoint came to. */
type Outcome = { ok: true } | { ok: false; code: string };

// Node's (OpenSSL's) codes for a server certificate that does not chain to the trusted CAs.
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
// The server's alerts when it wanted a client certificate and did not get one it accepts
// (TLS 1.3 sends "certificate required"; Go's TLS 1.2 sends "bad certificate").
const CLIENT_CERT_REFUSED = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
]);
// A plaintext server answering a TLS client hello: OpenSSL cannot parse its reply, or it hangs up.
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ECONNRESET', 'EPIPE']);

/**
 * The first endpoint whose TLS set-up is wrong, as the error to show; undefined when none is
 * (etcd is simply down, or the failure is not about TLS).
 */
export async function diagnoseEtcd(endpoints: string[], tls: EtcdTls, timeoutMs: number): Promise<GridError | undefined> {
  for (const endpoint of endpoints) {
    const found = await diagnoseOne(endpoint, tls, timeoutMs);
    if (found) return found;
  }
  return undefined;
}

async function diagnoseOne(endpoint: string, tls: EtcdTls, timeoutMs: number): Promise<GridError | undefined> {
  let url: URL;
  try {
    url = new URL(endpoint.includes('://') ? endpoint : `http://${endpoint}`);
  } catch {
    return undefined;
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const secure = url.protocol === 'https:';
  const port = Number(url.port || (secure ? 443 : 80));
  const at = `cannot reach etcd at ${endpoint}`;
  const caHint = "set etcd.tls.ca_file to the CA that signed etcd's certificate";

  if (!secure) {
    // Does the plaintext endpoint in fact speak TLS? Any TLS answer (even an alert) says so.
    const r = await handshake(host, port, { rejectUnauthorized: false }, timeoutMs);
    if (r.ok || CLIENT_CERT_REFUSED.has(r.code)) {
      const https = endpoint.replace(/^http:\/\//, 'https://');
      return new ConfigError('etcd.endpoints', `etcd at ${endpoint} speaks TLS on that port; use ${https.includes('://') ? https : `https://${https}`} and ${caHint}`);
    }
    return undefined;
  }

  const r = await handshake(host, port, clientTls(tls), timeoutMs);
  if (r.ok) return undefined;
  if (UNTRUSTED.has(r.code)) {
    const by = tls.ca_file ? `etcd.tls.ca_file (${tls.ca_file})` : 'a CA this system trusts (etcd.tls.ca_file is not set)';
    return new UnauthenticatedError(`${at}: its certificate is not signed by ${by}; ${caHint}`);
  }
  if (EXPIRED.has(r.code)) return new UnauthenticatedError(`${at}: its certificate has expired or is not valid yet; renew etcd's certificate`);
  if (r.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new UnauthenticatedError(`${at}: its certificate is not issued for "${host}"; use a name or address its certificate holds in etcd.endpoints`);
  }
  if (CLIENT_CERT_REFUSED.has(r.code)) {
    const trusted = 'signed by the CA etcd trusts (its --trusted-ca-file) and made for client authentication';
    return new UnauthenticatedError(
      tls.cert_file
        ? `${at}: it refused the client certificate etcd.tls.cert_file (${tls.cert_file}); set etcd.tls.cert_file and etcd.tls.key_file to a certificate ${trusted}`
        : `${at}: it requires a client certificate; set etcd.tls.cert_file and etcd.tls.key_file to a certificate ${trusted}`,
    );
  }
  if (NOT_TLS.has(r.code)) {
    return new ConfigError('etcd.endpoints', `etcd at ${endpoint} does not speak TLS on that port; use ${endpoint.replace(/^https:/, 'http:')}, or start etcd with --cert-file and --key-file`);
  }
  return undefined;
}

/** The TLS options of the etcd client, from the configured files (read errors name the key). */
export function clientTls(tls: EtcdTls): { ca: Buffer; cert?: Buffer; key?: Buffer } {
  return {
    ca: tls.ca_file ? readTlsFile('etcd.tls.ca_file', tls.ca_file) : Buffer.from(rootCertificates.join('\n')),
    ...(tls.cert_file ? { cert: readTlsFile('etcd.tls.cert_file', tls.cert_file), key: readTlsFile('etcd.tls.key_file', tls.key_file) } : {}),
  };
}

export function readTlsFile(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a readable PEM file`, { cause: err });
  }
}

/**
 * A TLS handshake, then an HTTP request: under TLS 1.3 the server judges the client certificate
 * after the client thinks the handshake is done, so its refusal arrives only as the reply.
 */
function handshake(host: string, port: number, options: ConnectionOptions, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ALPNProtocols: ['http/1.1'], ...options });
    const finish = (o: Outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ ok: false, code: 'ETIMEDOUT' }), timeoutMs);
    let secured = false;
    socket.once('secureConnect', () => {
      secured = true;
      socket.write(`GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    socket.once('data', () => finish({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, code: err.code ?? 'ERROR' }));
    // Closed after the handshake without a word or an alert: count it as answered.
    socket.once('end', () => finish(secured ? { ok: true } : { ok: false, code: 'ECONNRESET' }));
  });
}
