// GET /v1/executions/:id/logs: the execution's output as NDJSON, one object per line of output:
// {executor, executor_id, stream, line, offset}. `offset` is the GRID_LOGS stream sequence of the
// chunk the line came from (the lines of one chunk share it, and go out in one write); offsets
// only grow. `?offset=N` resumes with the chunks after N: a client cut off resumes from the last
// offset whose lines it has all, the one before the offset of the last line it got. `?tail=N`
// and `?since=10m` pick what to start with, as grid-cli getlogs's --tail and --since do.

import type { FastifyInstance } from 'fastify';
import { parseSince } from '../../../util/duration.js';
import type { LogChunkOut, LogService } from '../../logs.js';
import { asCaller, type HttpContext } from './context.js';
import { errorResponses, idParams } from './schemas.js';
import { streamAnswer, type OpenStreams } from './stream.js';

interface LogQuery {
  follow?: string;
  executor?: string;
  offset?: number;
  tail?: number;
  since?: string;
}

/**
 * The chunk's lines as NDJSON. A last line without its newline is sent as a line too, marked
 * `partial`: executors cut their output where a write ended, not at newlines, so such a line
 * usually goes on in the first line of the next chunk of its executor and stream.
 */
export function chunkLines(c: LogChunkOut): string {
  const text = Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength).toString('utf8');
  if (text === '') return '';
  const lines = text.split('\n');
  const whole = lines[lines.length - 1] === '';
  if (whole) lines.pop();
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    const partial = !whole && i === lines.length - 1 ? { partial: true } : {};
    out += JSON.stringify({ executor: c.executorName, executor_id: c.executorId, stream: c.stream, line: lines[i], offset: c.seq, ...partial }) + '\n';
  }
  return out;
}

export function logRoutes(app: FastifyInstance, ctx: HttpContext, logs: LogService, streams: OpenStreams): void {
  app.get<{ Params: { id: string }; Querystring: LogQuery }>('/v1/executions/:id/logs', {
    schema: {
      summary: "an execution's output as NDJSON, one {executor, executor_id, stream, line, offset, partial?} per line; follow=1 streams it until the execution ends",
      tags: ['executions'],
      params: idParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          follow: { type: 'string', enum: ['0', '1', 'true', 'false'], description: '1: keep streaming until the execution has ended and its last output was sent' },
          executor: { type: 'string', description: "only this executor's output (name or id)" },
          offset: { type: 'integer', minimum: 0, description: 'resume after the chunk with this offset' },
          tail: { type: 'integer', minimum: 0, description: "only the last this many lines of each executor's output (then, with follow=1, what comes next)" },
          since: { type: 'string', description: 'only what was written since then: how long ago (10m, 2h, 1h30m, seconds) or an RFC 3339 time' },
        },
      },
      response: {
        200: {
          description: 'one JSON object per line of output; a failure midway is a last line {"error": {…}}',
          content: { 'application/x-ndjson': { schema: { type: 'string' } } },
        },
        ...errorResponses(400, 403, 404, 429),
      },
    },
  }, async (req, reply) => {
    const q = req.query;
    // Authenticated before anything is streamed: a bad token is an ordinary 401.
    const who = await asCaller(ctx, req, async (p) => p);
    const sinceMs = q.since !== undefined ? parseSince(q.since, 'since') : undefined;
    await streamAnswer(ctx, streams, req, reply, {
      contentType: 'application/x-ndjson; charset=utf-8',
      source: (ready, signal) =>
        logs.stream(who, { executionId: req.params.id, follow: q.follow === '1' || q.follow === 'true', executor: q.executor ?? '', afterSeq: q.offset ?? 0, tailLines: q.tail, sinceMs, onReady: ready }, signal),
      format: chunkLines,
      formatError: (body) => JSON.stringify(body) + '\n',
    });
  });
}
