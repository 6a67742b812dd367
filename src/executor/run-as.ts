// `run_as`: the user host tasks run as, resolved to a uid and gid. Only root may start processes
// as another user, so an executor that is not root refuses the setting rather than ignore it.

import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

export function resolveRunAs(spec: string, passwdFile = '/etc/passwd', myUid = process.getuid?.() ?? -1): { uid: number; gid: number } | undefined {
  if (spec === '') return undefined;
  let who: { uid: number; gid: number };
  const ids = /^(\d+)(?::(\d+))?$/.exec(spec);
  if (ids) {
    const uid = Number(ids[1]);
    who = { uid, gid: ids[2] !== undefined ? Number(ids[2]) : (lookup(passwdFile, (f) => Number(f[2]) === uid)?.gid ?? uid) };
  } else {
    const found = lookup(passwdFile, (f) => f[0] === spec);
    if (!found) throw new ConfigError('run_as', `there is no user ${JSON.stringify(spec)} in ${passwdFile}; give an existing user, a uid, or uid:gid`);
    who = found;
  }
  if (who.uid === 0) throw new ConfigError('run_as', `${JSON.stringify(spec)} is root; tasks would run with every right the executor has`);
  if (myUid !== 0) {
    throw new ConfigError('run_as', `running tasks as ${JSON.stringify(spec)} needs the executor to run as root (it runs as uid ${myUid}); leave run_as empty to run them as the executor's user`);
  }
  return who;
}

function lookup(passwdFile: string, match: (fields: string[]) => boolean): { uid: number; gid: number } | undefined {
  let text = '';
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && match(f)) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}
