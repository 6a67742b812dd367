// Submitting an execution through the NATS request intake (grid-cli execute --via nats): the
// ExecuteRequest, in its JSON form, is published on GRID_REQUESTS with the bearer token and the
// inbox to answer on in its headers; a controller takes it from the shared durable, runs Execute
// and answers there. JetStream's own reply to the publish only says the request is stored.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { createInbox, errors, headers, type NatsConnection } from '@nats-io/nats-core';
import { keyFromSeed } from '../bus/authority.js';
import { connectBus, natsUnavailable } from '../bus/connect.js';
import { decode, SUBMIT_HEADERS, type SubmitAnswer } from '../bus/messages.js';
import { submitterInboxPrefix } from '../bus/permissions.js';
import { subjects } from '../bus/subjects.js';
import { ConfigError, fromGrpcStatus, GridError, PermissionDeniedError, UnavailableError } from '../errors.js';
import { ExecuteRequest, ExecuteResponse } from '../gen/grid/v1/controller.js';

export interface NatsSubmitOptions {
  servers: string[];
  /** A NATS credentials file (user JWT and seed); "" = connect without credentials. */
  credsFile: string;
  /** PEM file of the CA of the NATS servers; "" = the system's CAs. */
  caFile: string;
  /** The bearer token, checked by the controller as at every door. */
  token: string;
  /** How long to wait for the answer (while controllers cannot handle it, it waits in the stream). */
  waitMs: number;
  /** Each time a controller says the request waits (etcd down, say): the reason. */
  onWaiting?: (reason: string) => void;
}

/** The user JWT and seed of a NATS credentials file, as `grid-cli nats-credentials` writes one. */
export function readCredsFile(path: string): { jwt: string; seed: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('nats_creds', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; get credentials with grid-cli nats-credentials`);
  }
  const block = (name: string) => new RegExp(`-{3,}BEGIN ${name}-{3,}\\s*([^\\s-][^\\s]*)\\s*-{3,}END ${name}-{3,}`).exec(text)?.[1];
  const jwt = block('NATS USER JWT');
  const seed = block('USER NKEY SEED');
  if (!jwt || !seed) throw new ConfigError('nats_creds', `${path} is not a NATS credentials file (a user JWT and a seed); get one with grid-cli nats-credentials`);
  return { jwt, seed };
}

/** The text of a NATS credentials file (the format nats-server's tools and clients read). */
export function credsFileText(jwt: string, seed: string): string {
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    'NKEYs are sensitive and should be treated as secrets.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
  ].join('\n');
}

/** Publishes the request and waits for the controller's answer: the response, or its refusal as GRID's error. */
export async function submitOverNats(o: NatsSubmitOptions, req: ExecuteRequest): Promise<ExecuteResponse> {
  const user = o.credsFile ? readCredsFile(o.credsFile) : undefined;
  const inboxPrefix = user ? submitterInboxPrefix(keyFromSeed(user.seed).publicKey) : undefined;
  const nc = await connectBus({
    servers: o.servers,
    name: 'grid-cli',
    connectTimeoutMs: 10_000,
    ...(user ? { user } : {}),
    ...(inboxPrefix ? { inboxPrefix } : {}),
    tls: { ca_file: o.caFile, cert_file: '', key_file: '' },
  });
  try {
    return await exchange(nc, o, req, inboxPrefix);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

async function exchange(nc: NatsConnection, o: NatsSubmitOptions, req: ExecuteRequest, inboxPrefix: string | undefined): Promise<ExecuteResponse> {
  const requestId = randomUUID();
  const inbox = createInbox(inboxPrefix);
  const answers = nc.subscribe(inbox);
  const deadline = Date.now() + o.waitMs;
  // The server refuses a publish it does not permit only on the connection's status.
  let refuse: (err: Error) => void = () => {};
  const refused = new Promise<never>((_, reject) => (refuse = reject));
  refused.catch(() => undefined);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error' && s.error instanceof errors.PermissionViolationError) {
        refuse(
          new PermissionDeniedError(
            `NATS refused to let this user ${s.error.operation === 'publish' ? 'publish on' : 'subscribe to'} ${s.error.subject}: the request intake takes requests only from NATS users allowed to submit; get such credentials with grid-cli nats-credentials (nats_creds)`,
          ),
        );
      }
    }
  })();

  const h = headers();
  if (o.token) h.set(SUBMIT_HEADERS.authorization, `Bearer ${o.token}`);
  h.set(SUBMIT_HEADERS.replyTo, inbox);
  const body = new TextEncoder().encode(JSON.stringify(ExecuteRequest.toJSON(req)));
  const js = jetstream(nc);
  // Sent again with the same Msg-Id while JetStream does not confirm it: the stream keeps one.
  for (;;) {
    try {
      await Promise.race([js.publish(subjects.submitExecute, body, { msgID: requestId, headers: h, timeout: 5_000 }), refused]);
      break;
    } catch (err) {
      if (err instanceof GridError) throw err;
      const down = natsUnavailable(err, o.servers);
      if (!down || Date.now() >= deadline) throw down ?? err;
    }
  }

  const it = answers[Symbol.asyncIterator]();
  for (;;) {
    const left = deadline - Date.now();
    const next = await Promise.race([it.next(), refused, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(0, left)).unref())]);
    if (next === 'timeout' || next.done) {
      throw new UnavailableError(
        `no controller answered request ${requestId} within ${Math.round(o.waitMs / 1000)}s; it stays queued on GRID_REQUESTS and runs when a controller can take it (send the same command again with the same --idempotency-key to learn its execution)`,
      );
    }
    let a: SubmitAnswer;
    try {
      a = decode<SubmitAnswer>(next.value.data);
    } catch {
      continue;
    }
    if (a.request_id !== requestId) continue;
    if (a.answer === 'waiting') o.onWaiting?.(a.reason);
    else if (a.answer === 'refused') throw fromGrpcStatus(0, a.error.message, a.error.kind);
    else return ExecuteResponse.fromJSON(a.response);
  }
}
