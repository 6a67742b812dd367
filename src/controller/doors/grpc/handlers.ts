// Wrappers that turn async use-case functions into grpc-js handlers: authenticate from the
// `authorization` metadata, answer exactly once, map typed errors to gRPC statuses, and hand
// mutating calls (those given an AuditSpec) to the audit log before answering.

import {
  Metadata,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServerReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { ERROR_KIND_METADATA_KEY, GridError, toGrpcCode } from '../../../errors.js';
import type { Logger } from '../../../util/log.js';
import type { AuditLog, AuditSpec, Outcome } from '../../audit.js';
import { bearerToken, type Authenticator, type Principal } from '../../auth.js';

export interface HandlerContext {
  auth: Authenticator;
  log: Logger;
  /** Where mutating calls are recorded; absent = not recorded (tests of single services). */
  audit?: AuditLog;
  /**
   * GRID's error for a failure of a backend (etcd, NATS) that reached a handler as the client
   * library's own error, e.g. `etcd at … is not answering; retry`; undefined when it is not one.
   */
  backendError?: (err: unknown) => GridError | undefined;
}

/** The bearer token of a call's `authorization` metadata (see auth.ts). */
export function metadataToken(md: Metadata): string | undefined {
  const v = md.get('authorization')[0];
  return bearerToken(v);
}

export function toServiceError(err: unknown, log: Logger, method: string, backendError?: HandlerContext['backendError']): Partial<ServiceError> {
  const md = new Metadata();
  if (!(err instanceof GridError)) err = backendError?.(err) ?? err;
  if (err instanceof GridError) {
    md.set(ERROR_KIND_METADATA_KEY, err.kind);
    log.debug('call refused', { method, kind: err.kind, error: err.message });
    return { code: toGrpcCode(err), details: err.message, metadata: md };
  }
  log.error('call failed', { method, error: String((err as Error)?.stack ?? err) });
  return { code: status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}`, metadata: md };
}

/** A unary call that needs an authenticated principal. */
export function unary<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (req: Req, who: Principal, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  audit?: AuditSpec<Req, Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const token = metadataToken(call.metadata);
    let who: Principal | undefined;
    const seen = () => ({ principal: who, req: call.request, hide: [token] });
    (async () => {
      who = ctx.auth.authenticate(token);
      return fn(call.request, who, call);
    })().then(
      (res) => answer(ctx, audit, seen(), { ok: true, res }, () => callback(null, res)),
      (err) => answer(ctx, audit, seen(), { ok: false, err }, () => callback(toServiceError(err, ctx.log, method, ctx.backendError))),
    );
  };
}

/** A unary call that authenticates itself (executors prove who they are in the request). */
export function unaryOpen<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  audit?: AuditSpec<Req, Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const seen = () => ({ principal: audit && optionalPrincipal(ctx, call.metadata), req: call.request, hide: [metadataToken(call.metadata)] });
    fn(call.request, call).then(
      (res) => answer(ctx, audit, seen(), { ok: true, res }, () => callback(null, res)),
      (err) => answer(ctx, audit, seen(), { ok: false, err }, () => callback(toServiceError(err, ctx.log, method, ctx.backendError))),
    );
  };
}

/** Records an audited call, then answers it, so its line is written before the caller hears back. */
function answer<Req, Res>(
  ctx: HandlerContext,
  spec: AuditSpec<Req, Res> | undefined,
  call: { principal?: Principal; req: Req; hide: Array<string | undefined> },
  outcome: Outcome<Res>,
  reply: () => void,
): void {
  if (!spec || !ctx.audit) return reply();
  void ctx.audit.record(spec, { via: 'grpc', ...call }, outcome).then(reply);
}

/** The caller named by an optional bearer token (open calls may carry one), for the audit line. */
function optionalPrincipal(ctx: HandlerContext, md: Metadata): Principal | undefined {
  const token = metadataToken(md);
  if (!token) return undefined;
  try {
    return ctx.auth.authenticate(token);
  } catch {
    return undefined;
  }
}

/**
 * A server-streaming call fed by an async iterable. The iterable is given an AbortSignal that
 * fires when the client goes away, and is closed (its finally blocks run) when the call ends.
 */
export function serverStream<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (req: Req, who: Principal, signal: AbortSignal) => AsyncIterable<Res>,
) {
  return streamed<Req, Res>(ctx, method, (req, signal, call) => fn(req, ctx.auth.authenticate(metadataToken(call.metadata)), signal));
}

/** A server-streaming call that authenticates itself (executors prove who they are in the request). */
export function serverStreamOpen<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (req: Req, signal: AbortSignal, call: ServerWritableStream<Req, Res>) => AsyncIterable<Res>,
) {
  return streamed<Req, Res>(ctx, method, fn);
}

function streamed<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (req: Req, signal: AbortSignal, call: ServerWritableStream<Req, Res>) => AsyncIterable<Res>,
) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    call.on('close', () => abort.abort());
    (async () => {
      for await (const item of fn(call.request, abort.signal, call)) {
        if (abort.signal.aborted) break;
        if (!call.write(item)) await waitDrain(call, abort.signal);
      }
    })().then(
      () => call.end(),
      (err) => {
        // 'error' makes grpc-js send this status and end the call (destroy() would send none,
        // and the client would wait forever).
        if (!abort.signal.aborted) call.emit('error', toServiceError(err, ctx.log, method, ctx.backendError) as ServiceError);
      },
    );
  };
}

/**
 * A client-streaming call whose messages arrive as an async iterable. For the audit log, the
 * first message stands for the request (it names what the stream is about).
 */
export function clientStream<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (messages: AsyncIterable<Req>, who: Principal) => Promise<Res>,
  audit?: AuditSpec<Req | undefined, Res>,
) {
  return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>): void => {
    const token = metadataToken(call.metadata);
    let who: Principal | undefined;
    let first: Req | undefined;
    const messages = (async function* () {
      for await (const m of call as AsyncIterable<Req>) {
        first ??= m;
        yield m;
      }
    })();
    const seen = () => ({ principal: who, req: first, hide: [token] });
    (async () => {
      who = ctx.auth.authenticate(token);
      return fn(messages, who);
    })().then(
      (res) => answer(ctx, audit, seen(), { ok: true, res }, () => callback(null, res)),
      (err) => answer(ctx, audit, seen(), { ok: false, err }, () => callback(toServiceError(err, ctx.log, method, ctx.backendError))),
    );
  };
}

function waitDrain(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.on('drain', done);
    signal.addEventListener('abort', done);
  });
}
