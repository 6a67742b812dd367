// TLS for gRPC: the controller's server credentials (a client certificate is asked for but not
// required, since operators authenticate with bearer tokens and executors with certificates),
// the channel credentials of clients and executors, and the verified peer certificate of a call.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { ConfigError } from '../errors.js';
import type { PeerCert } from './ca.js';

/**
 * Server credentials that ask every client for a certificate and let Node check it against `ca`,
 * without refusing clients that send none: grpc-js's createSsl can only ask and require together.
 * A call then sees the certificate only if it verified (see peerCertificate).
 */
class OptionalClientCertificateCredentials extends ServerCredentials {
  constructor(ca: Buffer, cert: Buffer, key: Buffer) {
    super({ requestCert: true, rejectUnauthorized: false }, { ca, cert, key });
  }

  _equals(other: ServerCredentials): boolean {
    return this === other;
  }
}

export interface ServerTls {
  certPem: string;
  keyPem: string;
  /** The CA client certificates must chain to (GRID's CA). */
  clientCaPem: string;
}

export function serverCredentials(tls: ServerTls | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return new OptionalClientCertificateCredentials(Buffer.from(tls.clientCaPem), Buffer.from(tls.certPem), Buffer.from(tls.keyPem));
}

/** How a client reaches the controller. */
export interface ClientTls {
  /** No TLS at all (a controller with tls.enabled false). */
  plaintext?: boolean;
  /** PEM of the CA to verify the controller with; undefined = the system's CAs. */
  caPem?: string;
  /** An executor's client certificate and key (PEM). */
  certPem?: string;
  keyPem?: string;
}

export function channelCredentials(tls: ClientTls = {}): ChannelCredentials {
  if (tls.plaintext) return credentials.createInsecure();
  return credentials.createSsl(
    tls.caPem ? Buffer.from(tls.caPem) : null,
    tls.keyPem ? Buffer.from(tls.keyPem) : null,
    tls.certPem ? Buffer.from(tls.certPem) : null,
  );
}

/** Reads a CA file named by a config key into PEM, with one line naming the key on failure. */
export function readCaFile(path: string, key: string): string | undefined {
  if (!path) return undefined;
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new ConfigError(key, `${path} is not a PEM certificate`);
  }
  return pem;
}

export type { PeerCert } from './ca.js';

interface CallWithAuth {
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null;
}

/**
 * The client certificate of a call, if it sent one that chains to the server's client CA
 * (grpc-js hands it over only when Node verified it); undefined otherwise. Read once per
 * connection: Node builds the certificate afresh at each asking (about 0.1 ms, a twentieth of
 * the controller's work in a fan-out's claims), and one connection's is the same for each call.
 */
export function peerCertificate(call: unknown): PeerCert | undefined {
  const session = sessionOf(call);
  if (session && certBySession.has(session)) return certBySession.get(session);
  const cert = (call as CallWithAuth).getAuthContext?.()?.sslPeerCertificate;
  let peer: PeerCert | undefined;
  if (cert?.raw) {
    const cn = cert.subject?.CN;
    peer = { commonName: Array.isArray(cn) ? cn[0]! : (cn ?? ''), serial: cert.serialNumber.toLowerCase(), notAfterMs: Date.parse(cert.valid_to) };
  }
  if (session) certBySession.set(session, peer);
  return peer;
}

/** Each HTTP/2 session's (one TLS connection's) client certificate, once read; gone with the session. */
const certBySession = new WeakMap<object, PeerCert | undefined>();

/**
 * The HTTP/2 session a grpc-js server call came on. grpc-js does not hand it out: it is found
 * inside the call (its intercepting calls, down to the one holding the stream). If grpc-js
 * keeps it elsewhere one day, this finds none and each call's certificate is read as before.
 */
function sessionOf(call: unknown): object | undefined {
  type Inner = { call?: Inner; nextCall?: Inner; stream?: { session?: unknown } };
  let c = (call as Inner | undefined)?.call;
  for (let depth = 0; c && depth < 8; depth++) {
    const session = c.stream?.session;
    if (session && typeof session === 'object') return session;
    c = c.nextCall;
  }
  return undefined;
}

/**
 * An operator-facing reason for a failed TLS connection to the controller, or undefined when the
 * failure was not about TLS. `detail` is grpc-js's UNAVAILABLE text (it carries Node's TLS error).
 */
export function tlsFailureHint(detail: string, tls: ClientTls): string | undefined {
  if (/self[- ]signed|unable to (verify|get local issuer)|certificate (signature failure|verify failed)|unknown ca/i.test(detail)) {
    return `its certificate is not signed by ${tls.caPem ? 'the CA in ca_file' : "the system's CAs"}; set ca_file (or GRID_CA_FILE) to the CA that signed the controller's certificate (the embedded default writes it into .grid/client.json)`;
  }
  if (/ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match|altnames/i.test(detail)) {
    return `its certificate is not valid for this address; connect by a name on the certificate, or add this one to the controller's tls.server_names`;
  }
  if (/certificate has expired|CERT_HAS_EXPIRED/i.test(detail)) return "its certificate has expired; renew the controller's certificate";
  // Something listens (not refused, not unreachable) but the connection does not come up.
  const listening = !/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT/.test(detail);
  if (tls.plaintext && listening) {
    return 'it did not answer plaintext gRPC, so it probably serves TLS: remove plaintext (GRID_PLAINTEXT) and set ca_file to the CA that signed its certificate';
  }
  if (!tls.plaintext && /wrong version number|packet length too long|WRONG_VERSION_NUMBER|EPROTO/i.test(detail)) {
    return 'it does not speak TLS (a controller with tls.enabled false); turn TLS on at the controller, or set plaintext: true to talk to it unencrypted';
  }
  return undefined;
}
