// Every version etcd kept of a scenario's records: each execution and executor as it was after
// each write, in order. Read with a watch from a past revision (etcd keeps history until it
// compacts, an hour by default), so nothing depends on having polled at the right moment.

import type { Etcd3 } from 'etcd3';
import type { Execution } from '../../src/domain/execution.js';
import type { ExecutorRecord } from '../../src/domain/executor.js';

export interface History {
  /** Versions of each execution record, oldest first. */
  executions: Map<string, Execution[]>;
  /** Versions of each executor record, oldest first. */
  executors: Map<string, ExecutorRecord[]>;
}

/** The store's revision now (history is read from here on). */
export async function currentRevision(client: Etcd3): Promise<number> {
  const res = await client.kv.range({ key: Buffer.from('\0'), limit: 1 });
  return Number(res.header.revision);
}

/** The versions under `prefix` + executions/ and executors/ written since `fromRevision`. */
export async function readHistory(client: Etcd3, prefix: string, fromRevision: number, timeoutMs = 30_000): Promise<History> {
  const [executions, executors] = await Promise.all([
    versions<Execution>(client, `${prefix}executions/`, fromRevision, timeoutMs),
    versions<ExecutorRecord>(client, `${prefix}executors/`, fromRevision, timeoutMs),
  ]);
  return { executions, executors };
}

async function versions<T>(client: Etcd3, prefix: string, fromRevision: number, timeoutMs: number): Promise<Map<string, T[]>> {
  const out = new Map<string, T[]>();
  // The newest write under the prefix: the replay is complete once it has been seen. Records
  // here are never deleted while a scenario runs, so the newest write is a key that exists.
  const now = await client.getAll().prefix(prefix).exec();
  const last = Math.max(0, ...now.kvs.map((kv) => Number(kv.mod_revision)));
  if (last < fromRevision) return out;
  const watcher = await client.watch().prefix(prefix).startRevision(String(fromRevision)).create();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd history of ${prefix}: revision ${last} not replayed within ${timeoutMs} ms`)), timeoutMs);
      watcher.on('put', (kv) => {
        const id = kv.key.toString().slice(prefix.length);
        out.set(id, [...(out.get(id) ?? []), JSON.parse(kv.value.toString()) as T]);
        if (Number(kv.mod_revision) >= last) {
          clearTimeout(timer);
          resolve();
        }
      });
      watcher.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } finally {
    await watcher.cancel();
  }
  return out;
}
