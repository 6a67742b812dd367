// The executor's small HTTP server on `metrics_address`: /metrics (its Prometheus metrics),
// /livez and /readyz (200 while it runs and both its controller and NATS links are up, else
// 503). Plain node:http rather than Fastify: three fixed GETs with no bodies, schemas or auth,
// on every edge machine, need no framework loaded. Plain HTTP and no token: the page holds
// counts and up/down only; bind it to loopback or the network the scraper is on.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { ExecutorLinks, ExecutorMetrics } from './metrics.js';

export interface OpsServer {
  /** host:port it listens on (the port picked for port 0). */
  address: string;
  close(): Promise<void>;
}

export async function serveExecutorOps(o: {
  address: string;
  metrics: ExecutorMetrics;
  /** Whether the executor takes work now (running, not draining), and its links. */
  status: () => { running: boolean; links: ExecutorLinks };
  log: Logger;
}): Promise<OpsServer> {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(o.address);
  if (!m) throw new ConfigError('metrics_address', `${JSON.stringify(o.address)} must be host:port, e.g. "127.0.0.1:9102"`);
  const server = createServer((req, res) => {
    void answer(req, res, o).catch((err: Error) => {
      o.log.warn('metrics request failed', { path: req.url, error: err.message });
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ConfigError('metrics_address', `cannot listen on ${o.address}: ${err.code ?? err.message}`, { cause: err })));
    server.listen(Number(m[2]), m[1], () => resolve());
  });
  const address = o.address.replace(/:\d+$/, `:${(server.address() as AddressInfo).port}`);
  o.log.info('metrics ready', { address });
  let closing: Promise<void> | undefined;
  return {
    address,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, o: Parameters<typeof serveExecutorOps>[0]): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'only GET' }, { allow: 'GET, HEAD' });
  switch (path) {
    case '/livez':
      return json(res, 200, { status: 'ok' });
    case '/readyz': {
      const s = o.status();
      const ready = s.running && s.links.controller && s.links.nats;
      const links = { controller: s.links.controller ? 'up' : 'down', nats: s.links.nats ? 'up' : 'down' };
      return json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', running: s.running, links });
    }
    case '/metrics': {
      const text = await o.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': o.metrics.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    default:
      return json(res, 404, { error: `no route ${path}: /metrics, /livez and /readyz are served here` });
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}
