// The dashboard's static files under /ui: the page, its script and its style, as `make build`
// bundled them into dist/ui. They hold no data, so they are served without a token; every call
// the page makes for data goes to the API with the token it was given (a header, never a
// cookie, so there is nothing for another site to ride on). A handful of small files read
// once at start: a plain handler serves them, with no static-files plugin to configure.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { NotFoundError } from '../../../errors.js';

/** Where the bundle is: dist/ui beside the compiled door, or under dist/ when run from source. */
const CANDIDATES = ['../../../../ui/', '../../../../dist/ui/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
};

/**
 * Only this origin's script and style, no inline code, and the page in no frame: what a token
 * typed into the page can be read by is the page's own code.
 */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The files of the bundle directory by name; empty when it was not built. */
export function readUiAssets(dir: string | undefined = CANDIDATES.find((d) => existsSync(join(d, 'index.html')))): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!dir || !existsSync(dir)) return assets;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const type = TYPES[extname(name)];
    if (!type || !statSync(path).isFile()) continue;
    const body = readFileSync(path);
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

function send(reply: FastifyReply, a: Asset, ifNoneMatch: string | undefined): FastifyReply {
  // Revalidated on every load (a rebuilt controller serves a new bundle), answered 304 when unchanged.
  void reply
    .header('content-type', a.type)
    .header('cache-control', 'no-cache')
    .header('etag', a.etag)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('content-security-policy', CSP);
  if (ifNoneMatch === a.etag) return reply.code(304).send();
  return reply.send(a.body);
}

/** GET /ui (→ /ui/), /ui/ (the page) and /ui/<file>; hidden from /v1/openapi.json. */
export function uiRoutes(app: FastifyInstance, assets: Map<string, Asset>): void {
  const schema = { hide: true };
  app.get('/ui', { schema }, async (_req, reply) => reply.redirect('/ui/'));
  app.get<{ Params: { '*': string } }>('/ui/*', { schema }, async (req, reply) => {
    const name = req.params['*'] || 'index.html';
    const a = assets.get(name);
    if (!a) {
      throw assets.size === 0
        ? new NotFoundError('dashboard', '/ui/', 'it was not built: run make build')
        : new NotFoundError('dashboard file', name);
    }
    return send(reply, a, req.headers['if-none-match']);
  });
}
