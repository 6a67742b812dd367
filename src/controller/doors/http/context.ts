// What every HTTP route shares with the gRPC door: the caller named by the same bearer tokens
// (`Authorization: Bearer <token>`), the audit log for mutating calls, and GRID's error for a
// backend (etcd, NATS) that failed under a use-case.

import type { FastifyRequest } from 'fastify';
import { GridError } from '../../../errors.js';
import type { Logger } from '../../../util/log.js';
import type { AuditLog, AuditSpec } from '../../audit.js';
import { bearerToken, type Authenticator, type Principal } from '../../auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The name of the token the request was made with, once it is authenticated (for the access line). */
    gridCaller: string;
  }
}

export interface HttpContext {
  auth: Authenticator;
  log: Logger;
  /** Where mutating calls are recorded; absent = not recorded (tests of the door alone). */
  audit?: AuditLog;
  /** GRID's error for a failure of etcd or NATS that reached a route as the client library's own. */
  backendError?: (err: unknown) => GridError | undefined;
}

export function bearer(req: FastifyRequest): string | undefined {
  return bearerToken(req.headers.authorization);
}

/** The error as GRID reports it: a GridError, a backend's failure as one, or the error as it was. */
export function gridError(ctx: HttpContext, err: unknown): unknown {
  return err instanceof GridError ? err : (ctx.backendError?.(err) ?? err);
}

/** The request's caller, named in its access line. */
function authenticate(ctx: HttpContext, req: FastifyRequest): Principal {
  const who = ctx.auth.authenticate(bearer(req));
  req.gridCaller = who.name;
  return who;
}

/** Calls a use-case as the request's caller. */
export function asCaller<T>(ctx: HttpContext, req: FastifyRequest, run: (who: Principal) => Promise<T>): Promise<T> {
  return (async () => run(authenticate(ctx, req)))();
}

/**
 * A mutating call: the caller is authenticated, the use-case run, and the audit line written
 * (for refusals too, as the gRPC door does) before the answer goes out. `auditReq` is what the
 * spec reads the target and ids from.
 */
export async function audited<A, T>(
  ctx: HttpContext,
  req: FastifyRequest,
  spec: AuditSpec<A, T>,
  auditReq: A,
  run: (who: Principal) => Promise<T>,
): Promise<T> {
  const token = bearer(req);
  let principal: Principal | undefined;
  const call = () => ({ via: 'http', principal, req: auditReq, hide: [token] });
  try {
    principal = authenticate(ctx, req);
    const res = await run(principal);
    await ctx.audit?.record(spec, call(), { ok: true, res });
    return res;
  } catch (err) {
    const e = gridError(ctx, err);
    await ctx.audit?.record(spec, call(), { ok: false, err: e });
    throw e;
  }
}
