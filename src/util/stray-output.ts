// With log_format json every line a process prints must be a JSON object, including what does not
// come from GRID's own log calls: console.* of libraries (grpc-js reports through console.error),
// Node's warnings, and the stack of an uncaught exception. This sends all of those through the logger.

import { format } from 'node:util';
import type { Logger } from './log.js';

export function routeStrayOutput(log: Logger): void {
  const out = log.named('console');
  console.log = (...args: unknown[]) => out.info(format(...args));
  console.info = (...args: unknown[]) => out.info(format(...args));
  console.debug = (...args: unknown[]) => out.debug(format(...args));
  console.warn = (...args: unknown[]) => out.warn(format(...args));
  console.error = (...args: unknown[]) => out.error(format(...args));

  // Node's own listener prints "(node:123) Warning: …" on stderr; ours logs the same instead.
  const node = log.named('node');
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => node.warn(w.message, { warning: w.name, code: w.code }));

  process.on('uncaughtException', (err) => {
    node.error('uncaught exception; exiting', { error: String((err as Error)?.stack ?? err) });
    process.exit(1);
  });
}
