// Starts the HTTP/JSON door on `http_address`: HTTPS with the gRPC server's certificate when TLS
// is on, plain HTTP when it is off. Closing it ends the streams it serves, then the server.

import type { AddressInfo } from 'node:net';
import { ConfigError } from '../../../errors.js';
import type { HttpContext } from './context.js';
import type { OpsSources } from './ops.js';
import { buildHttpApi, type HttpUseCases } from './server.js';

export type { HttpUseCases } from './server.js';

export interface HttpDoor {
  /** host:port it listens on (the port it was given, or the one picked for port 0). */
  address: string;
  /** The dashboard's URL; "" when it was not built. */
  dashboard: string;
  close(): Promise<void>;
}

/** Requests still running this long after close() are cut off. */
const CLOSE_GRACE_MS = 5_000;

export async function startHttpDoor(
  uc: HttpUseCases,
  ctx: HttpContext,
  opts: { address: string; tls?: { certPem: string; keyPem: string }; ops?: OpsSources },
): Promise<HttpDoor> {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(opts.address);
  if (!m) throw new ConfigError('http_address', `${JSON.stringify(opts.address)} must be host:port, e.g. "127.0.0.1:7080"`);
  const { app, dashboard } = await buildHttpApi(uc, ctx, { ...(opts.tls ? { tls: opts.tls } : {}), ...(opts.ops ? { ops: opts.ops } : {}) });
  try {
    await app.listen({ host: m[1]!, port: Number(m[2]) });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw new ConfigError('http_address', `cannot listen on ${opts.address}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const address = opts.address.replace(/:\d+$/, `:${(app.server.address() as AddressInfo).port}`);
  const dashboardUrl = dashboard ? `${opts.tls ? 'https' : 'http'}://${address}/ui/` : '';
  ctx.log.info('http ready', { address, tls: opts.tls ? 'on' : 'off', ...(dashboardUrl ? { dashboard: dashboardUrl } : {}) });
  let closing: Promise<void> | undefined;
  return {
    address,
    dashboard: dashboardUrl,
    close: () =>
      (closing ??= (async () => {
        const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
        }
      })()),
  };
}
