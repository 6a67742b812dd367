// What probes and scrapers ask: /livez (the process serves HTTP), /readyz (etcd and NATS answer;
// 503 while either does not) and /metrics (Prometheus text format). /livez and /readyz are read
// without a token: kubelet and load-balancer probes send none, and they tell nothing but up or
// down. /metrics needs a token of role metrics (or viewer and up) without group scopes, since
// its labels name the jobs of every group.

import type { FastifyInstance } from 'fastify';
import { authorizeMetrics } from '../../auth.js';
import type { ControllerMetrics } from '../../metrics.js';
import type { Readiness } from '../../readiness.js';
import { asCaller, type HttpContext } from './context.js';
import { errorResponses } from './schemas.js';

/** The sources of /readyz and /metrics; either absent = that route is not served. */
export interface OpsSources {
  readiness?: Pick<Readiness, 'status'>;
  metrics?: Pick<ControllerMetrics, 'text' | 'contentType'>;
}

const backendsSchema = {
  type: 'object',
  properties: { etcd: { type: 'string', enum: ['up', 'down'] }, nats: { type: 'string', enum: ['up', 'down'] } },
};

export function opsRoutes(app: FastifyInstance, ctx: HttpContext, ops: OpsSources): void {
  app.get('/livez', {
    schema: {
      summary: 'liveness: 200 while the process serves HTTP',
      tags: ['meta'],
      security: [],
      response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } } },
    },
  }, async () => ({ status: 'ok' }));

  const { readiness, metrics } = ops;
  if (readiness) {
    app.get('/readyz', {
      schema: {
        summary: 'readiness: 200 while etcd and NATS both answer, 503 while either does not',
        tags: ['meta'],
        security: [],
        response: {
          200: { type: 'object', properties: { status: { type: 'string', enum: ['ready'] }, backends: backendsSchema } },
          503: { type: 'object', properties: { status: { type: 'string', enum: ['not_ready'] }, backends: backendsSchema } },
        },
      },
    }, async (_req, reply) => {
      const s = readiness.status();
      const backends = { etcd: s.backends.etcd ? 'up' : 'down', nats: s.backends.nats ? 'up' : 'down' };
      if (!s.ready) void reply.code(503).header('retry-after', '1');
      return { status: s.ready ? 'ready' : 'not_ready', backends };
    });
  }

  if (metrics) {
    app.get('/metrics', {
      schema: {
        summary: 'Prometheus metrics (text format 0.0.4); a token of role metrics, or viewer and up, without groups',
        tags: ['meta'],
        response: errorResponses(403),
      },
    }, async (req, reply) => {
      const text = await asCaller(ctx, req, async (who) => {
        authorizeMetrics(who);
        return metrics.text();
      });
      return reply.type(metrics.contentType).send(text);
    });
  }
}
