// Kubernetes watches as async iterables: `for await (const ev of watchEvents(…))`. The stream is
// re-opened when the API server closes it (watches time out by design) from the last resource
// version seen, or afresh after 410 Gone; the connection is released when the caller breaks out.

import { setTimeout as delay } from 'node:timers/promises';
import { Watch, type KubeConfig } from '@kubernetes/client-node';

export type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent<T> {
  type: WatchType;
  /** The object as JSON (dates are strings here, unlike the typed API calls' answers). */
  object: T;
}

/** The watch failed too often in a row to go on. */
export class WatchError extends Error {
  override readonly name = 'WatchError';
}

const MAX_FAILURES = 5;

/**
 * Watches `path` (a collection, e.g. /api/v1/namespaces/ns/pods) with `query` (labelSelector,
 * fieldSelector). Without a resource version (`from`) the API server starts with a synthetic ADDED
 * event for every object that exists, so the caller sees the current state first, then the changes.
 */
export async function* watchEvents<T extends { metadata?: { resourceVersion?: string } }>(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  signal: AbortSignal,
  from?: string,
): AsyncGenerator<WatchEvent<T>> {
  let resourceVersion: string | undefined = from;
  let failures = 0;
  while (!signal.aborted) {
    const queue: WatchEvent<T>[] = [];
    let ended: { err: unknown } | undefined;
    let wake: (() => void) | undefined;
    const poke = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const params: Record<string, string> = { ...query, allowWatchBookmarks: 'true' };
    if (resourceVersion) params['resourceVersion'] = resourceVersion;
    const ctl = await new Watch(kc).watch(
      path,
      params,
      (type, obj: T & { code?: number }) => {
        if (type === 'ERROR') {
          ended ??= { err: Object.assign(new Error(`watch error: ${JSON.stringify(obj)}`), { statusCode: obj.code }) };
        } else if (type === 'BOOKMARK') {
          resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
        } else {
          resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
          queue.push({ type: type as WatchType, object: obj });
        }
        poke();
      },
      (err: unknown) => {
        ended ??= { err };
        poke();
      },
    );
    signal.addEventListener('abort', poke);
    let received = false;
    try {
      for (;;) {
        while (queue.length > 0) {
          received = true;
          yield queue.shift()!;
          if (signal.aborted) return;
        }
        if (ended || signal.aborted) break;
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      signal.removeEventListener('abort', poke);
      ctl.abort();
    }
    if (signal.aborted) return;
    const err = ended?.err;
    if (!err) {
      failures = 0;
      continue; // closed by the server: watch again from where we were
    }
    if ((err as { statusCode?: number }).statusCode === 410) {
      resourceVersion = undefined; // too old: start afresh (synthetic ADDED events again)
      continue;
    }
    failures = received ? 1 : failures + 1;
    if (failures >= MAX_FAILURES) throw new WatchError(`cannot watch ${path}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    await delay(Math.min(200 * 2 ** failures, 3000), undefined, { signal }).catch(() => {});
  }
}
