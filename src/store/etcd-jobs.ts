// Job definitions under <prefix>jobs/<name>, versioned, replaced by compare-and-swap.

import type { JobDefinition, StoredJob } from '../domain/job.js';
import { AlreadyExistsError, ConflictError, NotFoundError } from '../errors.js';
import type { Kv } from './kv.js';
import { WatchedPrefix } from './watched-prefix.js';
import type { JobStore } from './store.js';

export class EtcdJobStore implements JobStore {
  /** Set by startCache(): definitions are read from memory, kept current by a watch. */
  private cache?: WatchedPrefix<StoredJob>;

  constructor(private readonly kv: Kv, private readonly now: () => number = Date.now) {}

  /** Keeps every definition in memory (Execute reads one per call). */
  async startCache(): Promise<void> {
    const cache = new WatchedPrefix<StoredJob>(this.kv, this.kv.key('jobs', ''));
    await cache.start();
    this.cache = cache;
  }

  async closeCache(): Promise<void> {
    await this.cache?.close();
  }

  private key(name: string): string {
    return this.kv.key('jobs', name);
  }

  /** Every version ever stored, kept so that an execution runs the version it was started with. */
  private versionKey(name: string, version: number): string {
    return this.kv.key('job-versions', name, String(version).padStart(10, '0'));
  }

  private readonly versions = new Map<string, StoredJob>();

  /**
   * The definition as it was at `version` (versions never change once written). NotFoundError
   * when the job was deleted or that version was never stored.
   */
  async getVersion(name: string, version: number): Promise<StoredJob> {
    const cached = this.cache?.get(name);
    if (cached?.version === version) return cached;
    const k = this.versionKey(name, version);
    const known = this.versions.get(k);
    if (known) return known;
    const got = (await this.kv.get<StoredJob>(k))?.value;
    // Definitions stored before versions were kept: the current one, if it is that version.
    const job = got ?? (await this.kv.get<StoredJob>(this.key(name)))?.value;
    if (!job || job.version !== version) throw new NotFoundError('job version', `${name} version ${version}`, 'the job was deleted or replaced before this version was kept');
    if (this.versions.size >= 1000) this.versions.delete(this.versions.keys().next().value!);
    this.versions.set(k, job);
    return job;
  }

  async createJob(def: JobDefinition, by: string): Promise<StoredJob> {
    const at = this.now();
    const job: StoredJob = { definition: def, version: 1, created_by: by, created_at_ms: at, updated_by: by, updated_at_ms: at };
    if (!(await this.kv.create(this.key(def.name), job, undefined, { [this.versionKey(def.name, 1)]: job }))) {
      throw new AlreadyExistsError('job', def.name, 'use --replace to update it');
    }
    return job;
  }

  async replaceJob(def: JobDefinition, by: string, expectedVersion?: number): Promise<StoredJob> {
    const cur = await this.kv.get<StoredJob>(this.key(def.name));
    if (!cur) throw new NotFoundError('job', def.name, 'create it first, without --replace');
    if (expectedVersion && cur.value.version !== expectedVersion) {
      throw new ConflictError('job', def.name, `expected version ${expectedVersion}, stored version is ${cur.value.version}`);
    }
    const job: StoredJob = { ...cur.value, definition: def, version: cur.value.version + 1, updated_by: by, updated_at_ms: this.now() };
    if (!(await this.kv.swap(this.key(def.name), job, cur.revision, { [this.versionKey(def.name, job.version)]: job }))) {
      throw new ConflictError('job', def.name, 'it was replaced by someone else meanwhile; describe it and try again');
    }
    return job;
  }

  async getJob(name: string): Promise<StoredJob> {
    // A definition created a moment ago may not have reached the cache yet: then ask etcd.
    const cached = this.cache?.get(name);
    if (cached) return cached;
    const cur = await this.kv.get<StoredJob>(this.key(name));
    if (!cur) throw new NotFoundError('job', name, 'grid-cli list shows the jobs there are');
    return cur.value;
  }

  async listJobs(): Promise<StoredJob[]> {
    const all = await this.kv.list<StoredJob>(this.kv.key('jobs', ''));
    return all.map((e) => e.value).sort((a, b) => a.definition.name.localeCompare(b.definition.name));
  }

  async deleteJob(name: string): Promise<void> {
    const cur = await this.kv.get<StoredJob>(this.key(name));
    if (!cur) throw new NotFoundError('job', name);
    if (!(await this.kv.deleteIf(this.key(name), cur.revision))) {
      throw new ConflictError('job', name, 'it changed while being deleted; try again');
    }
    await this.kv.deletePrefix(this.kv.key('job-versions', name, ''));
    for (const k of this.versions.keys()) if (k.startsWith(this.kv.key('job-versions', name, ''))) this.versions.delete(k);
  }
}
