// The NATS request intake: execution requests that authorized NATS clients publish on
// GRID_REQUESTS (grid.submit.execute), taken from the `intake` durable every controller replica
// shares and run through the same Execute use-case, with the same bearer token (the request's
// Authorization header), roles and audit log as the gRPC and HTTP doors.
//
// Each request ends one of three ways. Accepted or refused: the audit line is written, the answer
// is sent to the inbox the request names (Grid-Reply-To), and the message is acked (accepted) or
// terminated (refused: it can never succeed as sent). Not handled yet, because a backend does not
// answer (etcd down): it is nak'ed with a growing delay, never terminated, and a `waiting` answer
// says so; it runs once the backend is back. A request delivered again (a controller died before
// its ack) starts nothing new: its idempotency key returns the execution it started.

import { ExecuteRequest, ExecuteResponse } from '../../../gen/grid/v1/controller.js';
import type { Bus, Consuming, Submission } from '../../../bus/bus.js';
import { SUBMIT_HEADERS, type SubmitAnswer } from '../../../bus/messages.js';
import { GridError, ValidationError } from '../../../errors.js';
import type { Logger } from '../../../util/log.js';
import type { AuditLog } from '../../audit.js';
import { bearerToken, type Authenticator, type Principal } from '../../auth.js';
import type { ExecutionService } from '../../executions.js';
import { executeAudit, executeInput, executeResponse } from '../grpc/execute.js';
import { isInbox, readRequest } from './request.js';

export interface IntakeContext {
  auth: Authenticator;
  log: Logger;
  /** Where answers are recorded; absent = not recorded (tests of the door alone). */
  audit?: AuditLog;
  /** GRID's error for a failure of etcd or NATS that reached the door as the client library's own. */
  backendError?: (err: unknown) => GridError | undefined;
}

/** How long a request that could not be handled waits before it is offered again: 1 s, doubling to 10 s. */
export function retryDelayMs(deliveries: number): number {
  return Math.min(10_000, 1_000 * 2 ** Math.max(0, Math.min(deliveries - 1, 10)));
}

const BATCH = 64;

export class NatsIntake {
  private consumer?: Consuming;

  constructor(
    private readonly d: {
      bus: Pick<Bus, 'consumeSubmissions' | 'sendAnswer'>;
      executions: Pick<ExecutionService, 'execute'>;
      ctx: IntakeContext;
    },
  ) {}

  async start(): Promise<void> {
    // Requests of one batch are handled side by side: Execute group-commits them together.
    this.consumer = await this.d.bus.consumeSubmissions((batch) => Promise.all(batch.map((m) => this.handle(m))).then(() => undefined), {
      batchSize: BATCH,
      prefetch: BATCH * 2,
    });
    this.d.ctx.log.info('nats intake ready');
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }

  /** Handles one request and settles its message; never throws. */
  async handle(m: Submission): Promise<void> {
    const { ctx } = this.d;
    const requestId = m.header(SUBMIT_HEADERS.msgId) ?? '';
    const replyTo = m.header(SUBMIT_HEADERS.replyTo);
    const token = bearerToken(m.header(SUBMIT_HEADERS.authorization));
    let principal: Principal | undefined;
    let req: ExecuteRequest | undefined;
    const record = (outcome: { ok: true; res: ExecuteResponse } | { ok: false; err: unknown }) =>
      ctx.audit?.record(executeAudit, { via: 'nats', principal, req: req ?? ExecuteRequest.fromPartial({}), hide: [token] }, outcome);
    const answer = (a: SubmitAnswer) => {
      if (replyTo) this.d.bus.sendAnswer(replyTo, a);
    };
    try {
      if (replyTo !== undefined && !isInbox(replyTo)) {
        // The controller would publish where the requester chose, with its own NATS rights.
        ctx.log.warn('intake request dropped: its Grid-Reply-To is not an inbox', { request_id: requestId, reply_to: replyTo.slice(0, 100) });
        principal = tryAuthenticate(ctx.auth, token);
        const why = `${JSON.stringify(replyTo.slice(0, 100))} is not an inbox (_INBOX…); the request was dropped unanswered`;
        await record({ ok: false, err: new ValidationError([{ path: SUBMIT_HEADERS.replyTo, message: why }]) });
        m.term();
        return;
      }
      // Read first, so that the audit line of a refused caller still names the job (and hides
      // the argument values); the caller is told nothing of its request before it is authenticated.
      let unreadable: unknown;
      try {
        req = readRequest(m.data, requestId);
      } catch (err) {
        unreadable = err;
      }
      principal = ctx.auth.authenticate(token);
      if (!req) throw unreadable;
      const res = executeResponse(await this.d.executions.execute(principal, executeInput(req)));
      await record({ ok: true, res });
      answer({ request_id: requestId, answer: 'accepted', response: ExecuteResponse.toJSON(res) });
      m.ack();
    } catch (err) {
      const e = err instanceof GridError ? err : (ctx.backendError?.(err) ?? err);
      if (e instanceof GridError && e.retryable) {
        const delayMs = retryDelayMs(m.deliveries);
        ctx.log.warn('intake request cannot be handled now; it stays queued', {
          request_id: requestId, error: e.message, deliveries: m.deliveries, retry_in_ms: delayMs,
        });
        answer({ request_id: requestId, answer: 'waiting', reason: e.message, retry_in_ms: delayMs });
        m.nak(delayMs);
        return;
      }
      if (e instanceof GridError) ctx.log.debug('intake request refused', { request_id: requestId, kind: e.kind, error: e.message });
      else ctx.log.error('intake request failed', { request_id: requestId, error: String((e as Error)?.stack ?? e) });
      await record({ ok: false, err: e });
      const kind = e instanceof GridError ? e.kind : 'internal';
      const message = e instanceof GridError ? e.message : `internal error: ${(e as Error)?.message ?? String(e)}`;
      answer({ request_id: requestId, answer: 'refused', error: { kind, message } });
      m.term();
    }
  }
}

/** The caller, when the token names one; undefined otherwise (for the audit line only). */
function tryAuthenticate(auth: Authenticator, token: string | undefined): Principal | undefined {
  try {
    return auth.authenticate(token);
  } catch {
    return undefined;
  }
}
