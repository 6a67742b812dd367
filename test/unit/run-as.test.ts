// run_as: a user name, a uid or uid:gid, resolved against a passwd file; root only, never root.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveRunAs } from '../../src/executor/run-as.js';

const passwd = join(mkdtempSync(join(tmpdir(), 'grid-passwd-')), 'passwd');
writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\napp:x:1000:1001::/home/app:/bin/sh\n');

describe('resolveRunAs', () => {
  it('resolves names and ids', () => {
    expect(resolveRunAs('', passwd, 0)).toBeUndefined();
    expect(resolveRunAs('nobody', passwd, 0)).toEqual({ uid: 65534, gid: 65534 });
    expect(resolveRunAs('app', passwd, 0)).toEqual({ uid: 1000, gid: 1001 });
    expect(resolveRunAs('1000', passwd, 0)).toEqual({ uid: 1000, gid: 1001 });
    expect(resolveRunAs('4242', passwd, 0)).toEqual({ uid: 4242, gid: 4242 });
    expect(resolveRunAs('4242:7', passwd, 0)).toEqual({ uid: 4242, gid: 7 });
  });

  it('refuses an unknown user, root, and an executor that is not root', () => {
    expect(() => resolveRunAs('ghost', passwd, 0)).toThrow(/config run_as: there is no user "ghost" in .*passwd; give an existing user, a uid, or uid:gid/);
    expect(() => resolveRunAs('root', passwd, 0)).toThrow(/"root" is root; tasks would run with every right the executor has/);
    expect(() => resolveRunAs('0:0', passwd, 0)).toThrow(/is root/);
    expect(() => resolveRunAs('nobody', passwd, 1000)).toThrow(/needs the executor to run as root \(it runs as uid 1000\)/);
  });
});
