// The executor's identity, written by `executor register` and read by `executor start`:
// id, secret and NATS details. Mode 0600, written atomically.

import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError, FailedPreconditionError } from '../errors.js';

export interface ExecutorIdentity {
  executor_id: string;
  executor_secret: string;
  name: string;
  controller: string;
  nats_servers: string[];
  job_consumer: string;
  pool_consumers: string[];
  ping_deadline_seconds: number;
  registered_at_ms: number;
  /**
   * The executor's NATS user: the seed it made at its first registration (never sent anywhere),
   * the JWT the controller signed for it, and the reply prefix its permissions allow.
   */
  nats_user_seed?: string;
  nats_user_jwt?: string;
  nats_inbox_prefix?: string;
  /** Its TLS client key (PKCS#8 PEM, made here, never sent) and the certificate the controller issued for it. */
  tls_key?: string;
  tls_cert?: string;
  /** The CA of the NATS servers, as the controller handed it over at Register (PEM). */
  nats_ca?: string;
}

export async function loadIdentity(path: string): Promise<ExecutorIdentity> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FailedPreconditionError(`this executor is not registered yet (no state file at ${path}): run "executor register" first`);
    }
    throw err;
  }
  try {
    const id = JSON.parse(text) as ExecutorIdentity;
    if (!id.executor_id || !id.executor_secret) throw new Error('executor_id or executor_secret missing');
    return id;
  } catch (err) {
    throw new ConfigError('state_file', `${path} is damaged (${(err as Error).message}); run "executor register --replace" to register anew`);
  }
}

export async function loadIdentityIfAny(path: string): Promise<ExecutorIdentity | undefined> {
  try {
    return await loadIdentity(path);
  } catch (err) {
    if (err instanceof FailedPreconditionError) return undefined;
    throw err;
  }
}

export async function saveIdentity(path: string, id: ExecutorIdentity): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(id, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
