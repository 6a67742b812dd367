// Locates the server programs the embedded cluster runs (nats-server, etcd).

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { MissingBinaryError } from '../errors.js';

// Debian installs nats-server in /usr/sbin, which is not on a non-root user's PATH.
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin'];

/** Absolute path of `name` on PATH (plus the sbin folders); throws MissingBinaryError naming the Debian package. */
export function findBinary(name: string, debianPackage: string, pathEnv = process.env.PATH ?? ''): string {
  const dirs = [...pathEnv.split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw new MissingBinaryError(name, debianPackage);
}
