// Streamed answers (NDJSON log follows, Server-Sent Events) over the raw response. The status
// line is written only once the source says it is ready (the caller is authorized, the
// execution found, a stream slot taken), so a refusal is still an ordinary error answer with
// its status; a failure after that is written into the stream in its own format. The source
// gets a signal that fires when the client goes away or the door closes, and is closed (its
// finally blocks run) whenever the answer ends.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { type HttpContext } from './context.js';
import { errorAnswer, type ErrorBody } from './errors.js';

/** The streams being served, so that closing the door ends them (they would hold it open). */
export class OpenStreams {
  private readonly open = new Set<AbortController>();

  add(a: AbortController): () => void {
    this.open.add(a);
    return () => this.open.delete(a);
  }

  get size(): number {
    return this.open.size;
  }

  closeAll(): void {
    for (const a of this.open) a.abort();
    this.open.clear();
  }
}

export interface StreamSpec<T> {
  contentType: string;
  /** Items to send; `ready()` is called once the request has been accepted. */
  source: (ready: () => void, signal: AbortSignal) => AsyncIterable<T>;
  /** One item as text on the wire. */
  format: (item: T) => string;
  /** A failure after the status line went out, as text on the wire. */
  formatError: (body: ErrorBody) => string;
  /** Written every `every` ms of silence, so proxies and clients do not take the stream for dead. */
  keepAlive?: { every: number; text: string };
}

export async function streamAnswer<T>(ctx: HttpContext, streams: OpenStreams, req: FastifyRequest, reply: FastifyReply, spec: StreamSpec<T>): Promise<void> {
  void reply.hijack();
  const res = reply.raw;
  const abort = new AbortController();
  const forget = streams.add(abort);
  const gone = () => abort.abort();
  res.on('close', gone);
  let started = false;
  let lastWrite = Date.now();
  const ready = () => {
    if (started || abort.signal.aborted) return;
    started = true;
    res.writeHead(200, { 'content-type': spec.contentType, 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.flushHeaders();
  };
  const keepAlive = spec.keepAlive &&
    setInterval(() => {
      if (started && Date.now() - lastWrite >= spec.keepAlive!.every) {
        lastWrite = Date.now();
        res.write(spec.keepAlive!.text);
      }
    }, spec.keepAlive.every);
  const route = `${req.method} ${req.routeOptions.url ?? req.url}`;
  try {
    for await (const item of spec.source(ready, abort.signal)) {
      ready();
      lastWrite = Date.now();
      if (!res.write(spec.format(item))) await drained(res, abort.signal);
      if (abort.signal.aborted) break;
    }
    ready();
  } catch (err) {
    if (abort.signal.aborted && started) return;
    const a = errorAnswer(ctx, err, route);
    if (!started) {
      res.writeHead(a.status, { 'content-type': 'application/json; charset=utf-8', ...(a.retryAfter ? { 'retry-after': String(a.retryAfter) } : {}) });
      res.end(JSON.stringify(a.body));
      return;
    }
    res.write(spec.formatError(a.body));
  } finally {
    clearInterval(keepAlive);
    forget();
    res.off('close', gone);
    if (!res.writableEnded) res.end();
  }
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    signal.addEventListener('abort', done);
  });
}
