// An in-memory copy of every key under an etcd prefix, kept current by a watch that starts at
// the revision of the initial read (so no change falls between the two). Hot paths read it
// instead of etcd; every write still goes to etcd by compare-and-swap, so a copy a few
// milliseconds behind can cost a retry, never a wrong state. After compaction or a lost
// connection the watch reads the prefix again, and the copy takes on what changed meanwhile.

import type { IKeyValue } from 'etcd3';
import { watchKeys, type KeyWatch } from './key-watch.js';
import type { Kv } from './kv.js';

export class WatchedPrefix<T> {
  private readonly items = new Map<string, T>();
  /** Each item's mod revision: a fresh read changes only the items that changed. */
  private readonly revisions = new Map<string, number>();
  private watch?: KeyWatch;
  private readonly prefix: string;

  constructor(private readonly kv: Kv, prefix: string, private readonly onChange?: (id: string, value: T | undefined) => void) {
    this.prefix = prefix;
  }

  async start(): Promise<void> {
    this.watch = watchKeys(this.kv, {
      key: this.prefix,
      prefix: true,
      // Checked for silence: the prefixes kept in memory are small enough to sort each check.
      check: true,
      onSnapshot: (kvs, _revision, resumed) => this.replace(kvs, resumed),
      onPut: (kv) => this.put(kv, true),
      onDelete: (kv) => this.remove(this.idOf(kv), true),
    });
    await this.watch.ready;
  }

  get(id: string): T | undefined {
    return this.items.get(id);
  }

  values(): T[] {
    return [...this.items.values()];
  }

  get size(): number {
    return this.items.size;
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }

  private idOf(kv: IKeyValue): string {
    return kv.key.toString().slice(this.prefix.length);
  }

  private put(kv: IKeyValue, tell: boolean): void {
    const id = this.idOf(kv);
    const value = JSON.parse(kv.value.toString()) as T;
    this.items.set(id, value);
    this.revisions.set(id, Number(kv.mod_revision));
    if (tell) this.onChange?.(id, value);
  }

  private remove(id: string, tell: boolean): void {
    this.items.delete(id);
    this.revisions.delete(id);
    if (tell) this.onChange?.(id, undefined);
  }

  /** The copy becomes `kvs`; onChange hears of each difference, except on the first read. */
  private replace(kvs: IKeyValue[], tell: boolean): void {
    const now = new Set<string>();
    for (const kv of kvs) {
      now.add(this.idOf(kv));
      if (this.revisions.get(this.idOf(kv)) !== Number(kv.mod_revision)) this.put(kv, tell);
    }
    for (const id of [...this.items.keys()]) if (!now.has(id)) this.remove(id, tell);
  }
}
