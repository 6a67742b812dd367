// An in-memory copy of every key under an etcd prefix, kept current by a watch that starts at
// the revision of the initial read (so no change falls between the two). Hot paths read it
// instead of etcd; every write still goes to etcd by compare-and-swap, so a copy a few
// milliseconds behind can cost a retry, never a wrong state.

import type { Watcher } from 'etcd3';
import type { Kv } from './kv.js';

export class WatchedPrefix<T> {
  private readonly items = new Map<string, T>();
  private watcher?: Watcher;
  private readonly prefix: string;

  constructor(private readonly kv: Kv, prefix: string, private readonly onChange?: (id: string, value: T | undefined) => void) {
    this.prefix = prefix;
  }

  async start(): Promise<void> {
    const { kvs, revision } = await this.kv.rangeAll(this.prefix);
    for (const kv of kvs) this.items.set(kv.key.toString().slice(this.prefix.length), JSON.parse(kv.value.toString()) as T);
    this.watcher = await this.kv.client.watch().prefix(this.prefix).startRevision(String(revision + 1)).create();
    this.watcher.on('put', (kv) => {
      const id = kv.key.toString().slice(this.prefix.length);
      const value = JSON.parse(kv.value.toString()) as T;
      this.items.set(id, value);
      this.onChange?.(id, value);
    });
    this.watcher.on('delete', (kv) => {
      const id = kv.key.toString().slice(this.prefix.length);
      this.items.delete(id);
      this.onChange?.(id, undefined);
    });
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
    await this.watcher?.cancel();
  }
}
