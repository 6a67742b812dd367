// Follows one container's log (`GET /api/v1/namespaces/{ns}/pods/{pod}/log?follow=true&
// timestamps=true`) line by line into the task's sink. The request goes through the KubeConfig's
// own credentials and TLS agent; it is made here rather than through the client's Log helper so
// that the end of the stream — and a connection cut short — can be told apart and resumed.

import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { LogSink } from '../runner.js';
import { parseNanos, sinceTimeOf, type LogPosition } from './position.js';

export interface FollowOptions {
  kc: KubeConfig;
  namespace: string;
  pod: string;
  container: string;
  sink: LogSink;
  /** Where an earlier reader of this pod stopped: lines up to it are skipped. */
  position?: LogPosition;
  signal: AbortSignal;
  /** Called after each batch was handed to the sink, with the new position. */
  onDelivered(position: LogPosition): void;
}

/** The API server answered the log request with an error status. */
export class LogRequestError extends Error {
  override readonly name = 'LogRequestError';
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

/**
 * Reads the log once, from `position` on, until the server ends it (the container stopped) or
 * the connection breaks. Resolves with the position reached; whether the container is over is
 * for the caller to find out.
 */
export async function followLog(o: FollowOptions): Promise<LogPosition | undefined> {
  const cluster = o.kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(`${cluster.server.replace(/\/+$/, '')}/api/v1/namespaces/${encodeURIComponent(o.namespace)}/pods/${encodeURIComponent(o.pod)}/log`);
  url.searchParams.set('container', o.container);
  url.searchParams.set('follow', 'true');
  url.searchParams.set('timestamps', 'true');
  let position = o.position?.pod === o.pod ? o.position : undefined;
  const since = position ? sinceTimeOf(position.time) : undefined;
  if (since) url.searchParams.set('sinceTime', since);

  const opts: https.RequestOptions = { method: 'GET', headers: {} };
  await o.kc.applyToHTTPSOptions(opts);
  if (o.signal.aborted) return position;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, { ...opts, signal: o.signal }, resolve);
    req.once('error', reject);
    req.end();
  }).catch((err: Error) => {
    if (o.signal.aborted) return undefined;
    throw err;
  });
  if (!res) return position;
  if (res.statusCode !== 200) {
    const body = await readAll(res).catch(() => '');
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not a Status object
    }
    throw new LogRequestError(`cannot read the log of pod ${o.pod}: HTTP ${res.statusCode}: ${message.trim()}`, res.statusCode ?? 0);
  }

  // Skip what was delivered before: lines older than the position, then as many lines carrying
  // exactly its time as were delivered.
  const skipBefore = position ? parseNanos(position.time) : undefined;
  let skipSame = position?.sameTime ?? 0;
  let carry = '';
  const deliver = (text: string, final: boolean): void => {
    const lines = text.split('\n');
    carry = final ? '' : lines.pop()!;
    if (final && lines[lines.length - 1] === '') lines.pop();
    let out = '';
    for (const line of lines) {
      const sp = line.indexOf(' ');
      const ts = sp > 0 ? line.slice(0, sp) : line;
      const n = parseNanos(ts);
      const body = n === undefined ? line : line.slice(sp + 1);
      if (n !== undefined && skipBefore !== undefined) {
        if (n < skipBefore) continue;
        if (n === skipBefore && skipSame > 0) {
          skipSame--;
          continue;
        }
      }
      if (n !== undefined) {
        position = position && position.time === ts ? { ...position, sameTime: position.sameTime + 1 } : { pod: o.pod, time: ts, sameTime: 1 };
      }
      out += `${body}\n`;
    }
    if (out === '') return;
    o.sink.write('stdout', Buffer.from(out, 'utf8'));
    if (position) o.onDelivered(position);
  };

  res.setEncoding('utf8');
  await new Promise<void>((resolve) => {
    res.on('data', (s: string) => deliver(carry + s, false));
    // A cut connection ends like the log does; the caller checks the container and resumes.
    res.once('end', () => resolve());
    res.once('error', () => resolve());
    res.once('close', () => resolve());
  });
  // A last line without a newline is delivered only when the stream ended cleanly.
  if (carry !== '' && res.complete) deliver(carry, true);
  return position;
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (s += c));
    res.once('end', () => resolve(s));
    res.once('error', reject);
  });
}
