// /v1/executors: the registry, as `grid-cli executors … --output json` shows it.

import type { FastifyInstance } from 'fastify';
import { executorJson } from '../../../api/json.js';
import type { ExecutorView } from '../../../domain/executor.js';
import type { ExecutorRegistry } from '../../executors.js';
import { executorToPb } from '../grpc/convert.js';
import { asCaller, type HttpContext } from './context.js';
import { errorResponses, executorSchema } from './schemas.js';

export function executorView(e: ExecutorView) {
  return executorJson(executorToPb(e));
}

export function executorRoutes(app: FastifyInstance, ctx: HttpContext, executors: ExecutorRegistry): void {
  app.get('/v1/executors', {
    schema: {
      summary: 'the registered executors, by name',
      tags: ['executors'],
      response: { 200: { type: 'object', properties: { executors: { type: 'array', items: executorSchema } } }, ...errorResponses(403) },
    },
  }, async (req) => ({ executors: (await asCaller(ctx, req, (who) => executors.list(who))).map(executorView) }));

  app.get<{ Params: { id: string } }>('/v1/executors/:id', {
    schema: {
      summary: 'one executor, by id or name',
      tags: ['executors'],
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', description: "the executor's id or name" } } },
      response: { 200: executorSchema, ...errorResponses(403, 404) },
    },
  }, async (req) => executorView(await asCaller(ctx, req, (who) => executors.describe(who, req.params.id))));
}
