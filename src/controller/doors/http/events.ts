// GET /v1/events: Server-Sent Events of changes to executions and executors. Each event's data is
// JSON: `execution` (the status view, as GET /v1/executions/{id}), `execution_deleted` ({id}),
// `executor` (as GET /v1/executors/{id}), `executor_removed` ({id}), `reset` ({reason,
// executions, executors}: the current state) and `heartbeats` ({executors: [{id, lastSeenAtMs,
// runningTasks, load}]}: those this controller took lately; no id, not replayed). The `id:` is the etcd revision of the change; the
// changes of one revision go out in one write, the id on the last of them, so a client that
// reconnects with `Last-Event-ID: R` (browsers' EventSource does it by itself) gets every change
// after R — or, when etcd has compacted R away, a reset and the changes after it.

import type { FastifyInstance } from 'fastify';
import type { EventBatch, EventService, GridEvent } from '../../events.js';
import { asCaller, type HttpContext } from './context.js';
import { executorView } from './executors.js';
import { statusOf } from './executions.js';
import { errorResponses } from './schemas.js';
import { streamAnswer, type OpenStreams } from './stream.js';

/** A comment line this often when nothing else is sent, so idle proxies keep the stream. */
const KEEP_ALIVE_MS = 15_000;

function dataOf(e: GridEvent): unknown {
  switch (e.type) {
    case 'execution':
      return statusOf(e.execution);
    case 'executor':
      return executorView(e.executor);
    case 'reset':
      return { reason: e.reason, executions: e.executions.map(statusOf), executors: e.executors.map(executorView) };
    case 'heartbeats':
      return { executors: e.executors.map((h) => ({ id: h.id, lastSeenAtMs: h.last_seen_at_ms, runningTasks: h.running_tasks, load: h.load })) };
    default:
      return { id: e.id };
  }
}

/** The batch as SSE: one event per change, the revision as the id of the last (heartbeats have none). */
export function sseBatch(b: EventBatch): string {
  const last = b.events.length - 1;
  return b.events
    .map((e, i) => `event: ${e.type}\ndata: ${JSON.stringify(dataOf(e))}\n${i === last && b.revision !== undefined ? `id: ${b.revision}\n` : ''}\n`)
    .join('');
}

export function eventRoutes(app: FastifyInstance, ctx: HttpContext, events: EventService, streams: OpenStreams): void {
  app.get<{ Headers: { 'last-event-id'?: string } }>('/v1/events', {
    schema: {
      summary: 'Server-Sent Events of execution and executor changes; id = etcd revision, resumable with Last-Event-ID',
      tags: ['events'],
      headers: {
        type: 'object',
        properties: { 'last-event-id': { type: 'string', pattern: '^[0-9]+$', description: 'resume after this revision (the id of the last event received)' } },
      },
      response: {
        200: {
          description: 'events execution, execution_deleted, executor, executor_removed, reset and heartbeats (no id), each with JSON data; a failure midway is an `error` event',
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        ...errorResponses(400, 403, 429),
      },
    },
  }, async (req, reply) => {
    const who = await asCaller(ctx, req, async (p) => p);
    const last = req.headers['last-event-id'];
    await streamAnswer(ctx, streams, req, reply, {
      contentType: 'text/event-stream; charset=utf-8',
      source: (ready, signal) => events.stream(who, { ...(last ? { after: Number(last) } : {}), onReady: ready }, signal),
      format: sseBatch,
      formatError: (body) => `event: error\ndata: ${JSON.stringify(body)}\n\n`,
      keepAlive: { every: KEEP_ALIVE_MS, text: ': keep-alive\n\n' },
    });
  });
}
