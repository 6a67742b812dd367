// Connecting to NATS with GRID's defaults: named connections, endless reconnect with backoff,
// a NATS user (JWT + seed) when the server authenticates, and TLS when configured.

import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { errors, type NatsConnection } from '@nats-io/nats-core';
import { UnauthenticatedError, UnavailableError } from '../errors.js';
import { userAuthenticator } from './nkey-signer.js';

export interface NatsUser {
  jwt: string;
  seed: string;
}

export interface NatsTls {
  /** PEM file of the CA that signed the server's certificate ("" = the system's CAs). */
  ca_file: string;
  /** Client certificate and key, when the server asks for one. */
  cert_file: string;
  key_file: string;
}

export interface BusOptions {
  servers: string[];
  name: string;
  /** Give up the first connection after this long (later reconnects never give up). */
  connectTimeoutMs?: number;
  user?: NatsUser;
  /** Replies come back under this prefix (an executor may only hear its own). */
  inboxPrefix?: string;
  tls?: NatsTls;
  /** PEM of the CA to verify the server with, when it is not in a file (tls.ca_file wins). */
  caPem?: string;
}

export async function connectBus(opts: BusOptions): Promise<NatsConnection> {
  const tls = opts.tls && (opts.tls.ca_file || opts.tls.cert_file) ? tlsOptions(opts.tls) : undefined;
  const withCa = opts.caPem && !tls?.ca ? { ...tls, ca: opts.caPem } : tls;
  try {
    return await connect({
      servers: opts.servers,
      name: opts.name,
      timeout: opts.connectTimeoutMs ?? 10_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      reconnectJitter: 250,
      pingInterval: 10_000,
      // Every JetStream publish is a request; capturing a stack trace for each costs more CPU
      // than the publish itself on a hot path, and our errors carry their own context.
      noAsyncTraces: true,
      ...(opts.user ? { authenticator: userAuthenticator(opts.user.jwt, opts.user.seed) } : {}),
      ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
      ...(withCa ? { tls: withCa } : {}),
    });
  } catch (err) {
    const msg = (err as Error).message;
    const at = opts.servers.join(', ');
    if (err instanceof errors.AuthorizationError || err instanceof errors.UserAuthenticationExpiredError) {
      throw new UnauthenticatedError(
        `NATS at ${at} refused ${opts.name}: ${msg}${opts.user ? ' (its NATS user was not accepted: register the executor again, or check the server\'s operator block)' : ' (the server requires NATS credentials; an executor gets its own from executor register)'}`,
        { cause: err },
      );
    }
    // A certificate that does not verify: say which setting names the CA (Node's error codes).
    const code = (err as { code?: string }).code ?? ((err as Error).cause as { code?: string } | undefined)?.code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) || /unable to verify|self[- ]signed|certificate/i.test(msg)) {
      throw new UnavailableError(
        `cannot reach NATS at ${at}: ${msg}; set the CA that signed the NATS servers' certificate (controller: nats.tls.ca_file; executor: nats_tls.ca_file, which by default is the CA the controller hands over at register)`,
        { cause: err, retryable: false },
      );
    }
    throw new UnavailableError(`cannot reach NATS at ${at}: ${msg}`, { cause: err });
  }
}

/**
 * The UnavailableError for a nats.js error that means NATS is not answering (a request timed
 * out or found no responder, the connection is closed or lost), else undefined: a request that
 * needs NATS then tells its caller to retry, as one for etcd does.
 */
export function natsUnavailable(err: unknown, servers: string[]): UnavailableError | undefined {
  const down =
    err instanceof errors.TimeoutError ||
    err instanceof errors.NoRespondersError ||
    err instanceof errors.ClosedConnectionError ||
    err instanceof errors.ConnectionError ||
    (err instanceof errors.RequestError && (err.isNoResponders() || err.cause instanceof errors.TimeoutError));
  if (!down) return undefined;
  const why = (err as Error).message.replace(/\s*\n\s*/g, ' ').trim();
  return new UnavailableError(`NATS at ${servers.join(', ')} is not answering; retry (${why})`, { cause: err });
}

function tlsOptions(t: NatsTls): Record<string, string> {
  const read = (path: string) => readFileSync(path, 'utf8');
  const out: Record<string, string> = {};
  if (t.ca_file) out.ca = read(t.ca_file);
  if (t.cert_file) out.cert = read(t.cert_file);
  if (t.key_file) out.key = read(t.key_file);
  return out;
}
