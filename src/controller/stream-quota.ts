// Open GetLogs and WatchExecution streams per token (limits.streams_per_token), counted in this
// controller process: each holds a watch or a consumer until it ends, so one client must not be
// able to open them without bound. A slot is taken when a stream starts and given back when it
// ends, however it ends (finished, failed, or the caller went away).

import { tooManyStreams, type Limits } from '../domain/limits.js';
import type { Principal } from './auth.js';

export class StreamQuota {
  private readonly open = new Map<string, number>();

  constructor(private readonly limits: Pick<Limits, 'streams_per_token'>) {}

  /** Streams `p` has open now. */
  count(p: Pick<Principal, 'name'>): number {
    return this.open.get(p.name) ?? 0;
  }

  /**
   * `source` as one of `p`'s streams: refused with LimitExceededError when `p` has the limit
   * open already (before `source` is started), its slot given back when it ends.
   */
  async *hold<T>(p: Pick<Principal, 'name'>, source: () => AsyncIterable<T>): AsyncIterable<T> {
    const n = this.count(p);
    if (n >= this.limits.streams_per_token) throw tooManyStreams(p.name, n, this.limits);
    this.open.set(p.name, n + 1);
    try {
      yield* source();
    } finally {
      const left = this.count(p) - 1;
      if (left > 0) this.open.set(p.name, left);
      else this.open.delete(p.name);
    }
  }
}
