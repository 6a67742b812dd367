// SIGINT/SIGTERM handled in one place: the first asks for an orderly stop, a second one forces
// the process out at once.

import type { Logger } from './log.js';

export function onShutdownSignal(log: Logger, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    stopping = true;
    log.info('shutting down', { signal });
    stop(signal).then(
      () => process.exit(process.exitCode ?? 0),
      (err) => {
        log.error('shutdown failed', { error: (err as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
