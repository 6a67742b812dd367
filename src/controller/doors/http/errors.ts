// How the HTTP door answers a failure: `{"error": {"kind", "message", "field"}}` with the status
// errors.ts gives the kind. Fastify's own refusals (a request that fails its route's JSON schema,
// a body that is not JSON or too large) take the same shape, naming the field.

import type { FastifyError } from 'fastify';
import { GridError, ValidationError, toHttpStatus, type ErrorKind } from '../../../errors.js';
import { gridError, type HttpContext } from './context.js';

export interface ErrorBody {
  error: {
    kind: ErrorKind;
    message: string;
    /** The request field the error is about (`timeout_seconds`, `args.NAME`, `env_vars.args[0].type`); absent when none. */
    field?: string;
    /** A validation error's every problem, each with its field when it is about one (a form shows each beside its field). */
    problems?: Array<{ field?: string; message: string }>;
  };
}

export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
  /** Seconds, for 503 and 429 that may pass later (a `Retry-After` header). */
  retryAfter?: number;
}

interface AjvIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** The answer for anything a route threw or Fastify refused. Unexpected errors are logged. */
export function errorAnswer(ctx: HttpContext, err: unknown, route: string): ErrorAnswer {
  const fe = err as Partial<FastifyError> & { validation?: AjvIssue[]; validationContext?: string };
  if (Array.isArray(fe.validation) && fe.validation.length > 0) return fromGrid(schemaError(fe.validation[0]!));
  const e = gridError(ctx, err);
  if (e instanceof GridError) {
    if (toHttpStatus(e) >= 500 && e.kind !== 'unavailable') ctx.log.error('call failed', { route, kind: e.kind, error: e.message });
    else ctx.log.debug('call refused', { route, kind: e.kind, error: e.message });
    return fromGrid(e);
  }
  // Fastify's refusals of a request it could not read: not JSON, too large, an unsupported type.
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: { kind: 'validation', message: fe.message ?? 'bad request' } } };
  }
  ctx.log.error('call failed', { route, error: String((err as Error)?.stack ?? err) });
  return { status: 500, body: { error: { kind: 'internal', message: `internal error: ${(err as Error)?.message ?? String(err)}` } } };
}

function fromGrid(e: GridError): ErrorAnswer {
  const field = e instanceof ValidationError ? e.problems.find((p) => p.path)?.path : undefined;
  const problems = e instanceof ValidationError ? e.problems.map((p) => (p.path ? { field: p.path, message: p.message } : { message: p.message })) : undefined;
  const answer: ErrorAnswer = {
    status: toHttpStatus(e),
    body: { error: { kind: e.kind, message: e.message, ...(field ? { field } : {}), ...(problems ? { problems } : {}) } },
  };
  if (e.retryable && (e.kind === 'unavailable' || e.kind === 'resource_exhausted')) answer.retryAfter = 1;
  return answer;
}

/** A JSON-schema failure as a ValidationError naming the field: `/args/NAME` → `args.NAME`. */
function schemaError(issue: AjvIssue): ValidationError {
  const parts = issue.instancePath.split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let message = issue.message ?? 'is not valid';
  if (issue.keyword === 'required') {
    parts.push(String(issue.params.missingProperty));
    message = 'missing; it is required';
  } else if (issue.keyword === 'additionalProperties') {
    parts.push(String(issue.params.additionalProperty));
    message = 'unknown field';
  } else if (issue.keyword === 'enum' && Array.isArray(issue.params.allowedValues)) {
    message = `must be one of ${issue.params.allowedValues.join(', ')}`;
  }
  const field = parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join('');
  return new ValidationError([{ path: field, message }]);
}
