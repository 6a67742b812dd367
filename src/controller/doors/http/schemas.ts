// JSON schemas shared by the HTTP routes: Fastify validates requests with them and
// @fastify/swagger builds /v1/openapi.json from them. Responses are described, not narrowed:
// each is an open object, so a field added to the API reaches HTTP clients without a change here.

/** On a route whose body may be left out; the document's requestBody then says required: false. */
export const OPTIONAL_BODY_MARK = 'x-optional-body';

/** The OpenAPI document with each marked route's body optional (@fastify/swagger marks every body required). */
export function optionalBodies(doc: { paths?: Record<string, Record<string, Record<string, unknown>>> }): typeof doc {
  for (const ops of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(ops)) {
      if (!op[OPTIONAL_BODY_MARK]) continue;
      delete op[OPTIONAL_BODY_MARK];
      if (op.requestBody) (op.requestBody as { required: boolean }).required = false;
    }
  }
  return doc;
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'validation: the request is malformed; `field` names what is wrong',
  401: 'unauthenticated: no token, or one that is not accepted',
  403: "permission_denied: the token's role or groups do not allow this",
  404: 'not_found',
  409: 'already_exists, conflict (changed concurrently) or failed_precondition (not in a state that allows this)',
  429: "resource_exhausted: one of the controller's limits (limits.*), e.g. open streams per token",
  503: 'unavailable: etcd or NATS behind the controller is not answering; retry',
};

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['kind', 'message'],
      properties: {
        kind: { type: 'string', description: 'the error kind (src/errors.ts), e.g. validation, not_found' },
        message: { type: 'string' },
        field: { type: 'string', description: 'the request field at fault, e.g. timeout_seconds or args.NAME' },
        problems: {
          type: 'array',
          description: 'validation: every problem, each with the field it is about',
          items: { type: 'object', required: ['message'], properties: { field: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
  },
} as const;

/** Response schemas for the error statuses a route can answer with. */
export function errorResponses(...statuses: number[]): Record<number, object> {
  const out: Record<number, object> = {};
  for (const s of [401, 503, ...statuses]) out[s] = { description: ERROR_DESCRIPTIONS[s] ?? '', ...errorSchema };
  return out;
}

/** An open object: what it is, and the fields worth naming. */
export function openObject(description: string, properties: Record<string, object> = {}): object {
  return { type: 'object', description, additionalProperties: true, properties };
}

export const jobSchema = openObject('a job definition as stored: its metadata.json and version', {
  definition: openObject("Octavius's metadata.json as GRID normalised it (runner inferred, defaults filled)"),
  version: { type: 'integer' },
  created_by: { type: 'string' },
  created_at_ms: { type: 'integer' },
  updated_by: { type: 'string' },
  updated_at_ms: { type: 'integer' },
});

export const executionSchema = openObject(
  'an execution as `grid-cli status --output json` shows it: the Execution message with state names, and `workers`, its tasks keyed by executor name',
  {
    id: { type: 'string' },
    job: { type: 'string' },
    state: { type: 'string', description: 'QUEUED, DISPATCHED, RUNNING, SUCCEEDED, FAILED, CANCELLED or TIMED_OUT' },
    workers: {
      type: 'object',
      description: 'executor name → {state, exit_code, attempts, started_at, finished_at, reason}',
      additionalProperties: true,
    },
  },
);

export const executorSchema = openObject('an executor as `grid-cli executors describe --output json` shows it', {
  id: { type: 'string' },
  name: { type: 'string' },
  state: { type: 'string', description: 'ACTIVE, EXPIRED, DRAINING or STOPPED' },
});

export const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', description: "the job's name" } },
} as const;

export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', description: "the execution's id" } },
} as const;
