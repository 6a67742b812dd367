// The one way GRID watches etcd: a watch that survives what etcd3's own Watcher does not.
// etcd cancels a watch whose revision it has compacted (one that came back from an old
// revision, or fell behind). etcd3 emits that as an 'error' on the Watcher; the listener its
// create() leaves behind swallows the first one, so the watch just goes silent, and a later
// cancel() of it makes etcd answer for an id etcd3 no longer knows, which etcd3 throws out of
// its stream handler: the process ends. After a lost connection etcd3 resumes from the last
// revision it saw (compacted, perhaps, by then) and, once reattached, counts from the current
// revision before the missed changes have arrived, so a second break skips them.
// Here, after either, the keys are read afresh (the current state, handed to onSnapshot) and
// watched again from that read's revision + 1: the caller sees the current state, then every
// later change, and nothing a watch does reaches the process's uncaught handler.
// etcd before 3.4.32 can also leave a watch that fell behind silent without cancelling it (its
// slow-watcher path loses the watch's place; etcd-io/etcd#17529). So every few seconds a watch
// that sees puts asks etcd for the newest change under its keys: one etcd has had since the
// previous check and the watch still has not delivered is taken as such a break.

import type { IKeyValue, Watcher } from 'etcd3';
import { prefixEnd, type Kv } from './kv.js';

/** Reported (through KvOptions.onWatchResumed) each time a watch is read afresh after a break. */
export interface WatchResumed {
  /** The key watched without the store prefix; a prefix ends in `*` (`executors/*`). */
  what: string;
  /**
   * 'compacted': etcd cancelled the watch after creating it, which it does only when the
   * revision the watch is at has been compacted; 'refused': etcd cancelled it as it was created
   * (`reason` says why); 'disconnected': the connection to etcd was lost; 'silent': etcd held a
   * change under the watched keys for a whole check interval without delivering it.
   */
  cause: 'compacted' | 'refused' | 'disconnected' | 'silent';
  /** The revision of the fresh read; the watch resumes after it. */
  revision: number;
  reason?: string;
}

export interface WatchSpec {
  /** The key, or with `prefix` every key starting with it, or with `end` every key from it up to `end`. */
  key: string;
  prefix?: boolean;
  end?: string;
  /**
   * The snapshot handed to onSnapshot, instead of reading every watched key: for a range too
   * large to read whole, the part of it that makes the current state (and the revision read at).
   */
  read?: () => Promise<{ kvs: IKeyValue[]; revision: number }>;
  /** Only puts, or only deletes (snapshots are always whole). */
  only?: 'put' | 'delete';
  /**
   * Changes after this revision (the caller read the keys at it). Without it, the keys are
   * read first and handed to onSnapshot (with resumed false), and changes after that read follow.
   */
  after?: number;
  onPut?(kv: IKeyValue): void;
  onDelete?(kv: IKeyValue): void;
  /**
   * The keys as they are at `revision`: after the first read (resumed false), and after every
   * break (resumed true), when changes in between were not seen one by one.
   */
  onSnapshot?(kvs: IKeyValue[], revision: number, resumed: boolean): void;
  /**
   * Whether the watch is checked for silence (see the top of this file): on by default for one
   * key, off by default for a prefix or range (the check sorts every key in it). A watch of deletes
   * only is never checked (a deletion leaves nothing to read).
   */
  check?: boolean;
}

/** How often a checked watch asks etcd for the newest change under its keys (Kv's watchCheckMs overrides). */
export const WATCH_CHECK_MS = 5_000;

const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;

export class KeyWatch {
  /**
   * Resolves once the watch has its starting point (at once with `after`; else after the first
   * read): true, or false when closed first. Rejects when the first read fails (the watch is
   * then closed); nothing is lost if no one awaits it.
   */
  readonly ready: Promise<boolean>;
  private raw: Watcher | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  /** Watchers in a row that broke before etcd created them: each resume then waits longer. */
  private stillborn = 0;
  private readonly what: string;
  /** The newest revision the current watcher is known to have delivered (or started after). */
  private seen = 0;
  /** A newer change etcd had at a check, and when that check's answer came, if there was one. */
  private undelivered: { revision: number; atMs: number } | undefined;
  private checker: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly checkMs: number;

  constructor(private readonly kv: Kv, private readonly spec: WatchSpec) {
    const name = (k: string) => k.slice(k.startsWith(kv.prefix) ? kv.prefix.length : 0);
    this.what = name(spec.key) + (spec.end !== undefined ? `..${name(spec.end)}` : spec.prefix ? '*' : '');
    this.checkMs = kv.watchCheckMs ?? WATCH_CHECK_MS;
    if ((spec.check ?? (!spec.prefix && spec.end === undefined)) && spec.only !== 'delete') {
      this.checker = setInterval(() => void this.checkSilence(), this.checkMs);
      this.checker.unref();
    }
    if (spec.after !== undefined) {
      this.open(spec.after);
      this.ready = Promise.resolve(true);
      return;
    }
    this.ready = this.read().then(({ kvs, revision }) => {
      if (this.closed) return false;
      spec.onSnapshot?.(kvs, revision, false);
      this.open(revision);
      return true;
    });
    this.ready.catch(() => void this.close());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    clearInterval(this.checker);
    const raw = this.raw;
    this.raw = undefined;
    await raw?.cancel().catch(() => {});
  }

  /** A Watcher from `after` + 1, whose events count only while it is the current one. */
  private open(after: number): void {
    let b = this.kv.client.watch();
    b = this.spec.end !== undefined ? b.inRange({ start: this.spec.key, end: this.spec.end }) : this.spec.prefix ? b.prefix(this.spec.key) : b.key(this.spec.key);
    if (this.spec.only) b = b.only(this.spec.only);
    // watcher(), not create(): these listeners are on before anything can be emitted, while
    // create() hands the Watcher over a tick after it connected (a cancel may come first).
    const raw = b.startRevision(String(after + 1)).watcher();
    this.raw = raw;
    this.seen = after;
    this.undelivered = undefined;
    const current = (): boolean => this.raw === raw && !this.closed;
    let created = false;
    raw.on('connected', () => {
      created = true;
      this.stillborn = 0;
    });
    const delivered = (kv: IKeyValue): void => void (this.seen = Math.max(this.seen, Number(kv.mod_revision)));
    raw.on('put', (kv) => current() && (delivered(kv), this.spec.onPut?.(kv)));
    raw.on('delete', (kv) => current() && (delivered(kv), this.spec.onDelete?.(kv)));
    raw.on('error', (err: Error) => {
      if (!current()) return;
      // Not cancelled again: etcd answers a cancel of a watch it cancelled itself, for an id
      // etcd3 no longer knows, and etcd3 throws that out of its stream handler.
      this.broke(created, created ? { cause: 'compacted' } : { cause: 'refused', reason: err.message });
    });
    raw.on('disconnected', () => {
      if (!current()) return;
      // Dropped, not left to etcd3's resume: it is read afresh once etcd answers.
      void raw.cancel().catch(() => {});
      this.broke(created, { cause: 'disconnected' });
    });
  }

  /**
   * The newest change under the keys (a prefix's sorted by revision). One etcd already had a
   * whole interval ago and the watch has still not delivered means etcd left it silent: it is
   * dropped and read afresh. A change made just before a check is in flight, hence the wait; it
   * is timed from when etcd answered, since answers held up (a stalled link) arrive together.
   */
  private async checkSilence(): Promise<void> {
    const raw = this.raw;
    if (!raw || this.closed || this.checking) return;
    this.checking = true;
    let newest: number;
    try {
      newest = await this.newestRevision();
    } catch {
      return; // etcd unreachable: its connection's own break will resume the watch
    } finally {
      this.checking = false;
    }
    if (this.raw !== raw || this.closed) return;
    const now = Date.now();
    const u = this.undelivered;
    if (u && this.seen < u.revision && now - u.atMs >= this.checkMs) {
      void raw.cancel().catch(() => {});
      this.broke(true, { cause: 'silent' });
      return;
    }
    if (newest <= this.seen) this.undelivered = undefined;
    else if (!u || this.seen >= u.revision) this.undelivered = { revision: newest, atMs: now };
  }

  private async newestRevision(): Promise<number> {
    const key = Buffer.from(this.spec.key);
    const res = await this.kv.wrap(() =>
      this.kv.client.kv.range(
        this.spec.prefix || this.spec.end !== undefined
          ? { key, range_end: this.spec.end !== undefined ? Buffer.from(this.spec.end) : prefixEnd(key), keys_only: true, limit: 1, sort_order: 'Descend', sort_target: 'Mod' }
          : { key, keys_only: true },
      ),
    );
    return Number(res.kvs[0]?.mod_revision ?? 0);
  }

  private broke(created: boolean, why: Pick<WatchResumed, 'cause' | 'reason'>): void {
    this.raw = undefined;
    if (!created) this.stillborn++;
    this.resume(why, this.stillborn ? Math.min(RETRY_FIRST_MS * 2 ** (this.stillborn - 1), RETRY_MAX_MS) : 0);
  }

  /** After `waitMs`, reads afresh and watches from there; while etcd does not answer, tries again, less often. */
  private resume(why: Pick<WatchResumed, 'cause' | 'reason'>, waitMs: number): void {
    const attempt = (): void => {
      if (this.closed) return;
      this.read().then(
        ({ kvs, revision }) => {
          if (this.closed) return;
          this.spec.onSnapshot?.(kvs, revision, true);
          this.kv.onWatchResumed?.({ what: this.what, ...why, revision });
          this.open(revision);
        },
        () => {
          if (this.closed || this.kv.closed) return void this.close();
          this.resume(why, Math.min(Math.max(waitMs * 2, RETRY_FIRST_MS), RETRY_MAX_MS));
        },
      );
    };
    if (waitMs === 0) return attempt();
    this.retry = setTimeout(attempt, waitMs);
    this.retry.unref();
  }

  private async read(): Promise<{ kvs: IKeyValue[]; revision: number }> {
    if (this.spec.read) return this.spec.read();
    if (this.spec.end !== undefined) throw new Error('a range watch needs its own read');
    if (this.spec.prefix) return this.kv.rangeAll(this.spec.key);
    const res = await this.kv.wrap(() => this.kv.client.kv.range({ key: Buffer.from(this.spec.key) }));
    return { kvs: res.kvs, revision: Number(res.header.revision) };
  }
}

/** Watches `spec.key` (see WatchSpec); close() ends it. */
export function watchKeys(kv: Kv, spec: WatchSpec): KeyWatch {
  return new KeyWatch(kv, spec);
}
