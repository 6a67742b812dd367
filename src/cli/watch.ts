// --watch on the list commands: the list kept current until Ctrl-C. On a terminal it is redrawn
// in place every round (like watch(1)); otherwise a new table is printed only when its rows
// changed, and with --output json one JSON document a line (NDJSON) per change. The controller
// has no stream of list changes over gRPC, so the list is asked for again every WATCH_INTERVAL_MS.

import { setTimeout as sleep } from 'node:timers/promises';
import type { CliContext } from './context.js';
import { duration, time } from './output.js';

export const WATCH_INTERVAL_MS = 2_000;

/** One look at the list: what to print, and what decides whether it changed. */
export interface ListView {
  /** The table, or a line saying the list is empty. */
  text: string;
  /** The rows as --output json gives them. */
  json: unknown;
  /** Equal for two looks whose rows are the same (leaves out what ages by itself, like "3s ago"). */
  key: string;
}

const CLEAR_SCREEN = '\u001b[H\u001b[2J';

/**
 * Prints `look()` until SIGINT or SIGTERM (or `signal`), then returns, so the command exits 0.
 * An error of a look (the controller gone) ends the watch with it.
 */
export async function watchList(ctx: CliContext, title: string, look: () => Promise<ListView>, o: { intervalMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  const jsonOut = ctx.output === 'json';
  const intervalMs = o.intervalMs ?? WATCH_INTERVAL_MS;
  let lastKey: string | undefined;
  let printed = false;
  try {
    while (!signal.aborted) {
      const view = await look();
      const changed = view.key !== lastKey;
      lastKey = view.key;
      if (jsonOut) {
        if (changed) ctx.io.out(JSON.stringify(view.json));
      } else if (ctx.io.isTTY) {
        ctx.io.out(`${CLEAR_SCREEN}${title}    every ${duration(intervalMs)}, Ctrl-C to stop    ${time(Date.now())}\n\n${view.text}`);
      } else if (changed) {
        // A blank line between tables, so each reads as one.
        ctx.io.out(`${printed ? '\n' : ''}${view.text}`);
        printed = true;
      }
      await sleep(intervalMs, undefined, { signal }).catch(() => {});
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
