// The controller's state of record, in domain verbs. The etcd implementation (etcd-store.ts)
// owns its connection; use-cases depend only on this interface.

import type { JobDefinition, StoredJob } from '../domain/job.js';

export interface JobStore {
  /** Stores a new definition at version 1; AlreadyExistsError if the name is taken. */
  createJob(def: JobDefinition, by: string): Promise<StoredJob>;
  /**
   * Replaces a definition by compare-and-swap, bumping its version. With `expectedVersion`
   * the replace only happens if the stored version is that one (ConflictError otherwise).
   * NotFoundError if there is none.
   */
  replaceJob(def: JobDefinition, by: string, expectedVersion?: number): Promise<StoredJob>;
  getJob(name: string): Promise<StoredJob>;
  /** The definition as it was at `version`; NotFoundError if the job was deleted since. */
  getVersion(name: string, version: number): Promise<StoredJob>;
  listJobs(): Promise<StoredJob[]>;
  deleteJob(name: string): Promise<void>;
}

export interface Store extends JobStore {
  close(): Promise<void>;
}
