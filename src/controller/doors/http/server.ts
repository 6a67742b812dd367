// The HTTP/JSON door as a Fastify instance: JSON-schema validation of every request, errors in
// one shape, the routes over the same use-cases the gRPC door calls, /livez, /readyz and
// /metrics (ops.ts), /v1/openapi.json built from the routes' schemas, and the dashboard's files
// under /ui. door.ts makes it listen.

import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { NotFoundError } from '../../../errors.js';
import { VERSION } from '../../../version.js';
import type { ControllerUseCases } from '../../use-cases.js';
import type { HttpContext } from './context.js';
import { errorAnswer } from './errors.js';
import { optionalBodies } from './schemas.js';
import { eventRoutes } from './events.js';
import { executionRoutes } from './executions.js';
import { executorRoutes } from './executors.js';
import { jobRoutes } from './jobs.js';
import { logRoutes } from './logs.js';
import { opsRoutes, type OpsSources } from './ops.js';
import { OpenStreams } from './stream.js';
import { readUiAssets, uiRoutes } from './ui.js';

/** The use-cases behind the door: the ones the gRPC services call, and the events feed. */
export type HttpUseCases = Pick<ControllerUseCases, 'jobs' | 'executions' | 'executors' | 'logs' | 'events'>;

export interface HttpApiOptions {
  /** PEM certificate and key: serve HTTPS; absent = plain HTTP. */
  tls?: { certPem: string; keyPem: string };
  /** What /readyz and /metrics answer from (/livez is always there). */
  ops?: OpsSources;
  /** The dashboard's bundle; default: dist/ui as `make build` writes it. */
  uiDir?: string;
}

/** As gRPC's grpc.max_receive_message_length: a definition or execute request up to the limits. */
const BODY_LIMIT = 16 * 1024 * 1024;

export interface HttpApi {
  app: FastifyInstance;
  /** Every API route as "METHOD /path", in the order registered (the dashboard's files are not in it). */
  routes: string[];
  /** Whether the dashboard was built, so /ui/ serves it. */
  dashboard: boolean;
  /** The log follows and event streams being served. */
  streams: OpenStreams;
}

export async function buildHttpApi(uc: HttpUseCases, ctx: HttpContext, opts: HttpApiOptions = {}): Promise<HttpApi> {
  const app = Fastify({
    logger: false,
    exposeHeadRoutes: false,
    bodyLimit: BODY_LIMIT,
    ...(opts.tls ? { https: { cert: opts.tls.certPem, key: opts.tls.keyPem } } : {}),
    // Unknown fields are refused (not silently dropped, as Fastify's default does); query strings
    // are text, so their numbers are converted.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
    // With `https` Fastify types the instance by its https.Server; the routes need no more than the base type.
  }) as unknown as FastifyInstance;
  const routes: string[] = [];
  // Fastify's own logger is off: one access line per request at debug level, in GRID's log,
  // naming the route (not the path, whose query could carry anything) and the token's name.
  app.decorateRequest('gridCaller', '');
  app.addHook('onResponse', async (req, reply) => {
    ctx.log.debug('request', {
      method: req.method,
      route: req.routeOptions.url ?? req.url.split('?')[0],
      status: reply.statusCode,
      duration_ms: Math.round(reply.elapsedTime * 10) / 10,
      caller: req.gridCaller || '-',
    });
  });
  app.addHook('onRoute', (r) => {
    if ((r.schema as { hide?: boolean } | undefined)?.hide) return;
    for (const m of [r.method].flat()) routes.push(`${m} ${r.url}`);
  });

  // The body as sent is kept for job definitions, whose size limit counts what was sent.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    (req as FastifyRequest & { rawBody?: string }).rawBody = body as string;
    parseJson(req, body as string, done);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'GRID controller HTTP API',
        version: VERSION,
        description: 'The same use-cases, tokens, roles and scopes as the gRPC API. Errors are {"error": {"kind", "message", "field"}}.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a GRID API token (tokens in the controller config)' } } },
      security: [{ bearer: [] }],
    },
    // Always the OpenAPI form here (the `openapi` option above); the cast is to the plugin's union of both.
    transformObject: (d) => optionalBodies((d as { openapiObject: Parameters<typeof optionalBodies>[0] }).openapiObject) as never,
  });

  app.setErrorHandler((err, req, reply) => {
    const a = errorAnswer(ctx, err, `${req.method} ${req.routeOptions.url ?? req.url}`);
    if (a.retryAfter) void reply.header('retry-after', String(a.retryAfter));
    return reply.code(a.status).send(a.body);
  });
  app.setNotFoundHandler((req, reply) => {
    const a = errorAnswer(ctx, new NotFoundError('route', `${req.method} ${req.url.split('?')[0]}`, 'see /v1/openapi.json'), '');
    return reply.code(a.status).send(a.body);
  });

  const streams = new OpenStreams();
  app.addHook('preClose', async () => streams.closeAll());
  jobRoutes(app, ctx, uc.jobs);
  executionRoutes(app, ctx, uc.executions);
  logRoutes(app, ctx, uc.logs, streams);
  executorRoutes(app, ctx, uc.executors);
  eventRoutes(app, ctx, uc.events, streams);
  opsRoutes(app, ctx, opts.ops ?? {});
  app.get('/v1/openapi.json', {
    schema: { summary: 'this document', tags: ['meta'], security: [], response: { 200: { type: 'object', additionalProperties: true } } },
  }, async () => app.swagger());
  const assets = readUiAssets(opts.uiDir);
  uiRoutes(app, assets);
  await app.ready();
  return { app, routes, streams, dashboard: assets.size > 0 };
}
