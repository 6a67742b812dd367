// The executor registry in etcd: executors/<id> (record), executor-names/<name> (→ id, keeps
// names unique) and alive/<id> (empty, bound to the executor's lease).

import { isLive, type ExecutorRecord } from '../domain/executor.js';
import { AlreadyExistsError, NotFoundError } from '../errors.js';
import { watchKeys } from './key-watch.js';
import type { Kv } from './kv.js';
import type { AliveWatch, ExecutorStore } from './store.js';
import { WatchedPrefix } from './watched-prefix.js';

export type { AliveWatch } from './store.js';

export class EtcdExecutorStore implements ExecutorStore {
  /** Set by startCache(): reads of records come from memory, kept current by a watch. */
  private cache?: WatchedPrefix<ExecutorRecord>;

  constructor(private readonly kv: Kv) {}

  /** Keeps every executor record in memory from now on (heartbeats, dispatch, BeginTask). */
  async startCache(): Promise<void> {
    const cache = new WatchedPrefix<ExecutorRecord>(this.kv, this.kv.key('executors', ''), () => (this.live = undefined));
    await cache.start();
    this.cache = cache;
  }

  async closeCache(): Promise<void> {
    await this.cache?.close();
  }

  /** The record from memory when cached (else etcd); falls back to etcd for one not seen yet. */
  async getFast(id: string): Promise<ExecutorRecord | undefined> {
    return this.cache?.get(id) ?? (await this.get(id));
  }

  /** Every record, from memory when cached. */
  async all(): Promise<ExecutorRecord[]> {
    return this.cache ? this.cache.values() : (await this.list()).executors;
  }

  /** liveIds() from the cache, built again only after the registry changed. */
  private live?: ReadonlySet<string>;

  async liveIds(): Promise<ReadonlySet<string>> {
    const liveOf = (all: ExecutorRecord[]) => new Set(all.filter((x) => isLive(x.state)).map((x) => x.id));
    if (this.cache) return (this.live ??= liveOf(this.cache.values()));
    return liveOf((await this.list()).executors);
  }

  recordKey(id: string): string {
    return this.kv.key('executors', id);
  }
  nameKey(name: string): string {
    return this.kv.key('executor-names', name);
  }
  aliveKey(id: string): string {
    return this.kv.key('alive', id);
  }
  alivePrefix(): string {
    return this.kv.key('alive', '');
  }

  /** Creates the record and claims its name in one transaction. */
  async create(rec: ExecutorRecord): Promise<void> {
    const c = this.kv.client;
    const res = await c
      .if(this.nameKey(rec.name), 'Create', '==', 0)
      .and(this.recordKey(rec.id), 'Create', '==', 0)
      .then(c.put(this.nameKey(rec.name)).value(rec.id), c.put(this.recordKey(rec.id)).value(JSON.stringify(rec)))
      .commit();
    if (!res.succeeded) throw new AlreadyExistsError('executor', rec.name, 'register with --replace to take the name over');
  }

  async get(id: string): Promise<ExecutorRecord | undefined> {
    return (await this.kv.get<ExecutorRecord>(this.recordKey(id)))?.value;
  }

  async idForName(name: string): Promise<string | undefined> {
    const v = await this.kv.client.get(this.nameKey(name)).string();
    return v ?? undefined;
  }

  /** By id, or else by name; NotFoundError names what was asked for. */
  async find(idOrName: string): Promise<ExecutorRecord> {
    const byId = await this.get(idOrName);
    if (byId) return byId;
    const id = await this.idForName(idOrName);
    const rec = id ? await this.get(id) : undefined;
    if (!rec) throw new NotFoundError('executor', idOrName, 'grid-cli executors list shows them');
    return rec;
  }

  async list(): Promise<{ executors: ExecutorRecord[]; revision: number }> {
    const { kvs, revision } = await this.kv.rangeAll(this.kv.key('executors', ''));
    return { executors: kvs.map((kv) => JSON.parse(kv.value.toString()) as ExecutorRecord), revision };
  }

  /** Compare-and-swap update; `fn` returns undefined to leave the record alone. */
  update(id: string, fn: (cur: ExecutorRecord) => ExecutorRecord | undefined): Promise<ExecutorRecord | undefined> {
    return this.kv.update<ExecutorRecord>(this.recordKey(id), (cur) => (cur ? fn(cur) : undefined), 'executor');
  }

  /**
   * Deletes the record, its name claim and its alive key, and leaves a small tombstone so that
   * the removed executor's next call can be told what happened to it.
   */
  async remove(rec: ExecutorRecord): Promise<void> {
    const c = this.kv.client;
    const common = [
      c.delete().key(this.recordKey(rec.id)),
      c.delete().key(this.aliveKey(rec.id)),
      c.put(this.removedKey(rec.id)).value(JSON.stringify({ name: rec.name, at_ms: Date.now() })),
    ];
    await c
      .if(this.nameKey(rec.name), 'Value', '==', rec.id)
      .then(c.delete().key(this.nameKey(rec.name)), ...common)
      .else(...common)
      .commit();
  }

  removedKey(id: string): string {
    return this.kv.key('executors-removed', id);
  }

  async wasRemoved(id: string): Promise<boolean> {
    return this.kv.client.get(this.removedKey(id)).exists();
  }

  /** Binds alive/<id> to the lease. */
  async putAlive(id: string, leaseId: string): Promise<void> {
    await this.kv.client.put(this.aliveKey(id)).value('').lease(leaseId).exec();
  }

  async isAlive(id: string): Promise<boolean> {
    return (await this.kv.client.get(this.aliveKey(id)).exists()) as boolean;
  }

  /**
   * Calls `onDeleted(id)` for each alive/<id> deleted after `fromRevision` (lease expiry, revoke
   * or removal). After compaction or a lost connection the watch resumes from a fresh read, and
   * deletions in between were not seen one by one: then `onMissed()` is called instead.
   */
  async watchAlive(fromRevision: number, onDeleted: (id: string, revision: number) => void, onMissed: () => void): Promise<AliveWatch> {
    const prefix = this.alivePrefix();
    const watch = watchKeys(this.kv, {
      key: prefix,
      prefix: true,
      only: 'delete',
      after: fromRevision,
      onDelete: (kv) => onDeleted(kv.key.toString().slice(prefix.length), Number(kv.mod_revision)),
      onSnapshot: () => onMissed(),
    });
    await watch.ready;
    return { close: () => watch.close() };
  }

  async expire(id: string, at: number): Promise<ExecutorRecord | undefined> {
    const key = this.recordKey(id);
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await this.kv.get<ExecutorRecord>(key);
      if (!cur || !isLive(cur.value.state)) return undefined;
      const next: ExecutorRecord = { ...cur.value, state: 'EXPIRED', lease_id: '', state_changed_at_ms: at };
      const c = this.kv.client;
      const res = await c
        .if(key, 'Mod', '==', cur.revision)
        .and(this.aliveKey(id), 'Version', '==', 0)
        .then(c.put(key).value(JSON.stringify(next)))
        .commit();
      if (res.succeeded) return next;
      if (await this.isAlive(id)) return undefined; // it came back meanwhile
    }
    return undefined;
  }
}
