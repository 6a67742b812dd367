// Shutdown signals handled in one place. The first asks for an orderly stop, and the process
// exits when it is done. The same signal often arrives twice at once: `make` passes a SIGTERM
// that already reached its whole process group on to its child, and `timeout` signals the child
// and then the group. So a repeat within REPEAT_WINDOW_MS is the same request. A later one hurries
// the stop (what `hurry` does, e.g. SIGKILL to the child processes) and the process exits once
// that is done, never before: whatever it started is gone when it exits.

import type { Logger } from './log.js';

/** Signals arriving this soon after the first are taken as copies of it. */
export const REPEAT_WINDOW_MS = 1_000;

export interface ShutdownOptions {
  /** Default SIGINT and SIGTERM. */
  signals?: NodeJS.Signals[];
  /**
   * Called once, on a signal after the repeat window, while the orderly stop runs: end what is
   * left at once (resolving when it is gone); the process then exits with 130. Without it, that
   * signal makes the process exit at once.
   */
  hurry?: () => Promise<void>;
}

export interface Shutdown {
  /** Aborted at the first signal: work still starting up can give up. */
  readonly signal: AbortSignal;
}

export function onShutdownSignal(log: Logger, stop: (signal: string) => Promise<void>, opts: ShutdownOptions = {}): Shutdown {
  const requested = new AbortController();
  let firstAt: number | undefined;
  let hurried = false;
  const handler = (signal: NodeJS.Signals) => {
    if (firstAt === undefined) {
      firstAt = Date.now();
      requested.abort();
      log.info('shutting down', { signal });
      stop(signal).then(
        () => process.exit(process.exitCode ?? 0),
        (err) => {
          log.error('shutdown failed', { error: (err as Error).message });
          process.exit(1);
        },
      );
      return;
    }
    if (hurried || Date.now() - firstAt < REPEAT_WINDOW_MS) {
      log.debug('signal while already stopping: taken as the same request', { signal });
      return;
    }
    hurried = true;
    if (!opts.hurry) {
      log.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    log.warn('second signal: killing the child processes now', { signal });
    opts.hurry().then(
      () => process.exit(130),
      // The orderly stop goes on and exits when it is done.
      (err) => log.error('could not kill the child processes', { error: (err as Error).message }),
    );
  };
  for (const s of opts.signals ?? ['SIGINT', 'SIGTERM']) process.on(s, handler);
  return { signal: requested.signal };
}
