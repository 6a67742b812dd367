// Wrappers that turn async use-case functions into grpc-js handlers: authenticate from the
// `authorization` metadata, answer exactly once, map typed errors to gRPC statuses, hand
// mutating calls (those given an AuditSpec) to the audit log before answering, and write one
// access line per call at debug level.

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

/**
 * The access line of a call: its full method, the status it ended with, how long it took and who
 * made it (the token's name, or the executor a call claims to come from; never a token or secret).
 */
export function accessLine(log: Logger, path: string, code: number, startedMs: number, caller: string | undefined): void {
  log.debug('call', { method: path, code: status[code] ?? code, duration_ms: Math.round((performance.now() - startedMs) * 10) / 10, caller: caller ?? '-' });
}

/** Answers a unary call (or a client stream) exactly as told, then writes its access line. */
function replier<Res>(ctx: HandlerContext, method: string, path: string, callback: sendUnaryData<Res>, caller: () => string | undefined) {
  const started = performance.now();
  return {
    ok: (res: Res): void => {
      callback(null, res);
      accessLine(ctx.log, path, status.OK, started, caller());
    },
    fail: (err: unknown): void => {
      const e = toServiceError(err, ctx.log, method, ctx.backendError);
      callback(e);
      accessLine(ctx.log, path, e.code ?? status.UNKNOWN, started, caller());
    },
  };
}

/** Who an executor's call says it comes from: its id (or, registering, its name). */
function claimedExecutor(req: unknown): string | undefined {
  const { executorId, name } = (req ?? {}) as { executorId?: unknown; name?: unknown };
  if (typeof executorId === 'string' && executorId) return `executor:${executorId}`;
  return typeof name === 'string' && name ? `executor:${name}` : undefined;
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
    const reply = replier(ctx, method, call.getPath(), callback, () => who?.name);
    const seen = () => ({ principal: who, req: call.request, hide: [token] });
    (async () => {
      who = ctx.auth.authenticate(token);
      return fn(call.request, who, call);
    })().then(
      (res) => answer(ctx, audit, seen(), { ok: true, res }, () => reply.ok(res)),
      (err) => answer(ctx, audit, seen(), { ok: false, err }, () => reply.fail(err)),
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
    const reply = replier(ctx, method, call.getPath(), callback, () => claimedExecutor(call.request));
    const seen = () => ({ principal: audit && optionalPrincipal(ctx, call.metadata), req: call.request, hide: [metadataToken(call.metadata)] });
    fn(call.request, call).then(
      (res) => answer(ctx, audit, seen(), { ok: true, res }, () => reply.ok(res)),
      (err) => answer(ctx, audit, seen(), { ok: false, err }, () => reply.fail(err)),
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
  return streamed<Req, Res>(ctx, method, (req, signal, call, seen) => {
    const who = ctx.auth.authenticate(metadataToken(call.metadata));
    seen.caller = who.name;
    return fn(req, who, signal);
  });
}

/** A server-streaming call that authenticates itself (executors prove who they are in the request). */
export function serverStreamOpen<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (req: Req, signal: AbortSignal, call: ServerWritableStream<Req, Res>) => AsyncIterable<Res>,
) {
  return streamed<Req, Res>(ctx, method, (req, signal, call, seen) => {
    seen.caller = claimedExecutor(req);
    return fn(req, signal, call);
  });
}

function streamed<Req, Res>(
  ctx: HandlerContext,
  method: string,
  fn: (req: Req, signal: AbortSignal, call: ServerWritableStream<Req, Res>, seen: { caller?: string }) => AsyncIterable<Res>,
) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const started = performance.now();
    const seen: { caller?: string } = {};
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    call.on('close', () => abort.abort());
    (async () => {
      for await (const item of fn(call.request, abort.signal, call, seen)) {
        if (abort.signal.aborted) break;
        if (!call.write(item)) await waitDrain(call, abort.signal);
      }
    })().then(
      () => {
        call.end();
        accessLine(ctx.log, call.getPath(), abort.signal.aborted ? status.CANCELLED : status.OK, started, seen.caller);
      },
      (err) => {
        // 'error' makes grpc-js send this status and end the call (destroy() would send none,
        // and the client would wait forever).
        let code: number = status.CANCELLED;
        if (!abort.signal.aborted) {
          const e = toServiceError(err, ctx.log, method, ctx.backendError);
          code = e.code ?? status.UNKNOWN;
          call.emit('error', e as ServiceError);
        }
        accessLine(ctx.log, call.getPath(), code, started, seen.caller);
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
    const reply = replier(ctx, method, call.getPath(), callback, () => who?.name);
    const seen = () => ({ principal: who, req: first, hide: [token] });
    (async () => {
      who = ctx.auth.authenticate(token);
      return fn(messages, who);
    })().then(
      (res) => answer(ctx, audit, seen(), { ok: true, res }, () => reply.ok(res)),
      (err) => answer(ctx, audit, seen(), { ok: false, err }, () => reply.fail(err)),
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
