// /v1/jobs/:name/executions, /v1/executions: execute, list (paged), status, cancel; and GRID's
// aliases POST /tasks and GET /tasks/:id/status. Executions are shown as grid-cli shows them
// with --output json (statusJson: the Execution message with state names and the workers map).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { executionJson, statusJson } from '../../../api/json.js';
import { EXECUTION_STATES, type ExecutionState } from '../../../domain/execution.js';
import { ValidationError } from '../../../errors.js';
import { parseDuration } from '../../../util/duration.js';
import { didYouMean } from '../../../util/suggest.js';
import type { AuditSpec } from '../../audit.js';
import type { ExecuteResult, ExecutionService } from '../../executions.js';
import type { ExecutionView } from '../../views.js';
import { executionToPb } from '../grpc/convert.js';
import { asCaller, audited, type HttpContext } from './context.js';
import { errorResponses, executionSchema, idParams, nameParams, openObject, OPTIONAL_BODY_MARK } from './schemas.js';

const STATES = EXECUTION_STATES;

/** The execution as `grid-cli status --output json` prints it. */
export function statusOf(x: ExecutionView) {
  return statusJson(executionToPb(x));
}

interface ExecuteBody {
  job?: string;
  args?: Record<string, string>;
  target?: string;
  timeout_seconds?: number;
  wait_offline?: string;
  batch_size?: string;
  max_failures?: string;
  dry_run?: boolean;
  idempotency_key?: string;
}

const executeFields = {
  args: { type: 'object', additionalProperties: { type: 'string' }, description: 'argument name → value (secrets too; they are sealed and never shown)' },
  target: { type: 'string', description: "all, group:G, node:NAME, any, any:G, comma-separated; default: the job's" },
  timeout_seconds: { type: 'integer', minimum: 0, description: "0 = the job's own timeout" },
  wait_offline: { type: 'string', description: "keep offline executors' tasks queued this long: 90s, 10m, 2h, 1h30m or seconds" },
  batch_size: { type: 'string', description: 'roll out in waves of N executors, or N%' },
  max_failures: { type: 'string', description: 'stop the rollout after N (or N%) failed tasks' },
  dry_run: { type: 'boolean', description: 'resolve the target and show who would run it; run nothing' },
  idempotency_key: { type: 'string', description: 'the same key within 24 h returns the execution it started (also the Idempotency-Key header)' },
} as const;

/**
 * JSON, or no body at all (a POST with nothing to say: defaults). Fastify validates a body only
 * for the content types listed; the route is marked so the document says the body is optional.
 */
const optionalJson = (schema: object) => ({ content: { 'application/json': { schema } } });
const OPTIONAL_BODY = { [OPTIONAL_BODY_MARK]: true };

const executeBody = optionalJson({ type: 'object', additionalProperties: false, properties: executeFields });
const taskBody = { type: 'object', additionalProperties: false, required: ['job'], properties: { job: { type: 'string' }, ...executeFields } } as const;

const executeResponse = openObject('the execution started (201), or the one this idempotency key started earlier (200, reused: true); a dry run (200) lists dryRun rows', {
  executionId: { type: 'string' },
  execution: executionSchema,
  dryRun: { type: 'array', items: openObject('an executor the target resolves to, or one left out and why') },
  reused: { type: 'boolean' },
});

const idempotencyHeader = {
  type: 'object',
  properties: { 'idempotency-key': { type: 'string', description: 'as idempotency_key in the body' } },
} as const;

const executeSpec: AuditSpec<ExecuteBody & { job: string }, ExecuteResult> = {
  action: 'execution.create',
  target: (r) => r.job,
  executionId: (_r, res) => res?.execution?.id,
  on: (r, res) => res?.execution?.target ?? r.target,
  dryRun: (r) => !!r.dry_run,
  reused: (_r, res) => !!res?.reused,
  hide: (r) => Object.values(r.args ?? {}),
};

/** Execute, for /v1/jobs/:name/executions and /tasks alike. */
async function execute(ctx: HttpContext, uc: ExecutionService, req: FastifyRequest, reply: FastifyReply, body: ExecuteBody & { job: string }) {
  const header = req.headers['idempotency-key'];
  const key = body.idempotency_key ?? (typeof header === 'string' ? header : '');
  if (body.idempotency_key !== undefined && typeof header === 'string' && header !== body.idempotency_key) {
    throw new ValidationError([{ path: 'idempotency_key', message: 'differs from the Idempotency-Key header; give one of them' }]);
  }
  const res = await audited(ctx, req, executeSpec, body, (who) =>
    uc.execute(who, {
      job: body.job,
      args: body.args ?? {},
      target: body.target ?? '',
      timeoutSeconds: body.timeout_seconds ?? 0,
      waitOfflineMs: body.wait_offline ? parseDuration(body.wait_offline, 'wait_offline') : 0,
      batchSize: body.batch_size ?? '',
      maxFailures: body.max_failures ?? '',
      dryRun: !!body.dry_run,
      idempotencyKey: key,
    }),
  );
  const started = !!res.execution && !res.reused;
  return reply.code(started ? 201 : 200).send({
    executionId: res.execution?.id ?? '',
    execution: res.execution ? statusOf(res.execution) : undefined,
    dryRun: (res.dryRun ?? []).map((r) => ({ executorId: r.executorId, executorName: r.executorName, skipped: r.skipped, reason: r.reason })),
    reused: !!res.reused,
  });
}

function stateOf(text: string | undefined): ExecutionState | undefined {
  if (!text) return undefined;
  const norm = text.trim().toUpperCase().replace(/-/g, '_');
  if ((STATES as string[]).includes(norm)) return norm as ExecutionState;
  throw new ValidationError([{ path: 'state', message: `${JSON.stringify(text)} is not one of ${STATES.join(', ')}${didYouMean(norm, STATES)}` }]);
}

export function executionRoutes(app: FastifyInstance, ctx: HttpContext, executions: ExecutionService): void {
  app.post<{ Params: { name: string }; Body: ExecuteBody }>('/v1/jobs/:name/executions', {
    schema: {
      summary: 'execute a job',
      tags: ['executions'],
      ...OPTIONAL_BODY,
      params: nameParams,
      headers: idempotencyHeader,
      body: executeBody,
      response: { 200: executeResponse, 201: executeResponse, ...errorResponses(400, 403, 404, 409, 429) },
    },
  }, async (req, reply) => execute(ctx, executions, req, reply, { ...(req.body ?? {}), job: req.params.name }));

  app.get<{ Querystring: { job?: string; state?: string; limit?: number; cursor?: string } }>('/v1/executions', {
    schema: {
      summary: 'a page of executions, newest first',
      tags: ['executions'],
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          job: { type: 'string' },
          state: { type: 'string', description: STATES.join(', ') },
          limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'default 20' },
          cursor: { type: 'string', description: 'next_cursor of the page before' },
        },
      },
      response: {
        200: openObject('a page: next_cursor is "" on the last one; pruned_before_ms and retention say what retention has deleted', {
          executions: { type: 'array', items: executionSchema },
          next_cursor: { type: 'string' },
          pruned_before_ms: { type: 'integer' },
          retention: { type: 'string' },
        }),
        ...errorResponses(400, 403),
      },
    },
  }, async (req) => {
    const q = req.query;
    const page = await asCaller(ctx, req, (who) => executions.list(who, { job: q.job, state: stateOf(q.state), limit: q.limit, pageAfter: q.cursor }));
    return {
      executions: page.executions.map((x) => executionJson(executionToPb(x))),
      next_cursor: page.next,
      pruned_before_ms: page.prunedBeforeMs,
      retention: page.retention,
    };
  });

  app.get<{ Querystring: { job?: string } }>('/v1/executions/counts', {
    schema: {
      summary: 'how many executions are in each state, of one job when given',
      tags: ['executions'],
      querystring: { type: 'object', additionalProperties: false, properties: { job: { type: 'string' } } },
      response: {
        200: openObject('counts has every state; at_least lists the states whose counting stopped at its limit (there are at least that many)', {
          counts: { type: 'object', additionalProperties: { type: 'integer' } },
          at_least: { type: 'array', items: { type: 'string' } },
        }),
        ...errorResponses(400, 403),
      },
    },
  }, async (req) => {
    const c = await asCaller(ctx, req, (who) => executions.counts(who, { job: req.query.job }));
    return { counts: c.counts, at_least: c.atLeast };
  });

  app.get<{ Params: { id: string } }>('/v1/executions/:id', {
    schema: { summary: "an execution's status, with its workers map", tags: ['executions'], params: idParams, response: { 200: executionSchema, ...errorResponses(403, 404) } },
  }, async (req) => statusOf(await asCaller(ctx, req, (who) => executions.get(who, req.params.id))));

  app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>('/v1/executions/:id/cancel', {
    schema: {
      summary: 'cancel an execution: tasks not started never start, running ones are stopped',
      tags: ['executions'],
      ...OPTIONAL_BODY,
      params: idParams,
      body: optionalJson({ type: 'object', additionalProperties: false, properties: { reason: { type: 'string' } } }),
      response: { 200: executionSchema, ...errorResponses(400, 403, 404, 409) },
    },
  }, async (req) => {
    const id = req.params.id;
    const spec: AuditSpec<object, ExecutionView> = { action: 'execution.cancel', target: () => id, executionId: () => id };
    return statusOf(await audited(ctx, req, spec, {}, (who) => executions.cancel(who, id, req.body?.reason ?? '')));
  });

  // GRID's aliases.
  app.post<{ Body: ExecuteBody & { job: string } }>('/tasks', {
    schema: {
      summary: 'alias of POST /v1/jobs/{name}/executions with the job in the body',
      tags: ['aliases'],
      headers: idempotencyHeader,
      body: taskBody,
      response: { 200: executeResponse, 201: executeResponse, ...errorResponses(400, 403, 404, 409, 429) },
    },
  }, async (req, reply) => execute(ctx, executions, req, reply, req.body));

  app.get<{ Params: { id: string } }>('/tasks/:id/status', {
    schema: { summary: 'alias of GET /v1/executions/{id}', tags: ['aliases'], params: idParams, response: { 200: executionSchema, ...errorResponses(403, 404) } },
  }, async (req) => statusOf(await asCaller(ctx, req, (who) => executions.get(who, req.params.id))));
}
