// The file store use-case and the executor's fetch against a real nats-server: what `put` stores
// (with and without a digest from the sender), what it refuses without touching the stored
// version (a wrong digest, too many bytes, a bad name, the wrong role), and what the executor's
// prepareFiles makes of stored, missing, tampered and templated files, checked against the
// digests recorded in etcd (not the object store's own metadata).

import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureStreams } from '../../src/bus/setup.js';
import type { Principal } from '../../src/controller/auth.js';
import { FileService } from '../../src/controller/files.js';
import type { JobDefinition } from '../../src/domain/job.js';
import { PermissionDeniedError, ValidationError } from '../../src/errors.js';
import { prepareFiles, type TaskFileRef } from '../../src/executor/files.js';
import { Kv } from '../../src/store/kv.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const admin: Principal = { name: 'root', role: 'admin', groups: [] };
const operator: Principal = { name: 'ops', role: 'operator', groups: [] };
const viewer: Principal = { name: 'eve', role: 'viewer', groups: [] };
const MAX = 1024 * 1024;

let servers: TestServers;
let nc: NatsConnection;
let files: FileService;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers();
  nc = await servers.connectNats('files-test');
  await ensureStreams(nc);
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('files')}/` });
  files = new FileService({ nc, kv, maxBytes: MAX });
});

afterAll(async () => {
  kv?.close();
  await nc?.close();
  await servers?.stop();
});

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function* chunksOf(data: Uint8Array, size = 1000): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function read(name: string, who: Principal = operator): Promise<{ info: unknown; data: Buffer }> {
  let info: unknown;
  const parts: Uint8Array[] = [];
  for await (const c of files.get(who, name)) {
    if (c.info) info = c.info;
    parts.push(c.chunk);
  }
  return { info, data: Buffer.concat(parts) };
}

function def(f: JobDefinition['files'], secrets: string[] = []): JobDefinition {
  return {
    name: 'job',
    description: '',
    authorized_groups: [],
    env_vars: { secrets: secrets.map((name) => ({ name, description: '' })), args: [] },
    runner: 'host',
    command: ['true'],
    files: f,
  } as JobDefinition;
}

describe('FileService', () => {
  it('stores a file with or without a digest from the sender; the digest is the SHA-256 of the content', async () => {
    const data = Buffer.alloc(300_001, 'ab');
    const a = uniqueName('a');
    const b = `${uniqueName('dir')}/b.conf`;
    expect(await files.put(admin, { name: a, size: data.length, digest: sha(data) }, chunksOf(data))).toMatchObject({ name: a, size: data.length, digest: sha(data) });
    expect(await files.put(admin, { name: b }, chunksOf(data, 70_000))).toMatchObject({ name: b, size: data.length, digest: sha(data) });
    for (const n of [a, b]) {
      const got = await read(n);
      expect(got.data.equals(data)).toBe(true);
      expect(got.info).toMatchObject({ name: n, size: data.length, digest: sha(data) });
    }
    const empty = uniqueName('empty');
    expect(await files.put(admin, { name: empty }, chunksOf(new Uint8Array(0)))).toMatchObject({ size: 0, digest: sha(new Uint8Array(0)) });
    expect((await read(empty)).data.length).toBe(0);
    const listed = await files.list(operator);
    expect(listed.map((f) => f.name)).toEqual(expect.arrayContaining([a, b, empty]));
    expect(listed.find((f) => f.name === a)!.modifiedAtMs).toBeGreaterThan(0);
  });

  it('refuses content that does not match the digest sent, or is too big, and keeps the stored version', async () => {
    const name = uniqueName('keep');
    const v1 = Buffer.from('version one\n');
    await files.put(admin, { name }, chunksOf(v1));

    const v2 = Buffer.from('version two\n');
    await expect(files.put(admin, { name, digest: sha(Buffer.from('something else')) }, chunksOf(v2, 3))).rejects.toThrow(
      /does not match|is sha256:.* but the sender said sha256:.*nothing was stored/,
    );
    const big = Buffer.alloc(MAX + 1);
    await expect(files.put(admin, { name, size: big.length }, chunksOf(big, 100_000))).rejects.toThrow(/is 1048577 bytes \(1\.0 MiB\); files in GRID are at most 1 MiB/);
    // Size not said up front: counted as it streams, with and without a digest.
    await expect(files.put(admin, { name }, chunksOf(big, 100_000))).rejects.toThrow(ValidationError);
    await expect(files.put(admin, { name, digest: sha(big) }, chunksOf(big, 100_000))).rejects.toThrow(/at most 1 MiB/);

    const got = await read(name);
    expect(got.data.toString()).toBe('version one\n');
    expect(got.info).toMatchObject({ digest: sha(v1) });
  });

  it('checks names and roles', async () => {
    await expect(files.put(admin, { name: '../x' }, chunksOf(Buffer.from('x')))).rejects.toThrow(/name: "\.\.\/x" must not contain "\.\."/);
    await expect(files.put(operator, { name: 'x' }, chunksOf(Buffer.from('x')))).rejects.toThrow(PermissionDeniedError);
    await expect(files.list(viewer)).rejects.toThrow(/may not read files/);
    await expect(files.delete(operator, 'x')).rejects.toThrow(/may not change files/);
    await expect(files.delete(admin, uniqueName('never'))).rejects.toThrow(/^file ".*" not found/);
  });

  it('deletes files', async () => {
    const name = uniqueName('gone');
    await files.put(admin, { name }, chunksOf(Buffer.from('x')));
    await files.delete(admin, name);
    expect((await files.list(admin)).map((f) => f.name)).not.toContain(name);
    await expect(read(name)).rejects.toThrow(/not found/);
  });
});

/** What BeginTask hands out: the definition's files with the digests etcd recorded. */
async function refs(f: JobDefinition['files']): Promise<TaskFileRef[]> {
  const digests = await files.recordedDigests(f.map((x) => x.name));
  return f.map((x) => ({ ...x, digest: digests[x.name] ?? '' }));
}

function prepare(f: TaskFileRef[], args: Record<string, string>, secrets: string[] = []) {
  return prepareFiles(f, args, secrets, (name) => files.content(name));
}

describe('prepareFiles (the executor)', () => {
  it('fetches, verifies and renders files, with their modes', async () => {
    const tpl = uniqueName('tpl');
    const raw = uniqueName('raw');
    await files.put(admin, { name: tpl }, chunksOf(Buffer.from('port={{PORT}}\n')));
    await files.put(admin, { name: raw }, chunksOf(Buffer.from('port={{PORT}}\n')));
    const out = await prepare(
      await refs([
        { name: tpl, path: 'conf/a.conf', template: true, mode: '0600' },
        { name: raw, path: 'b.conf', template: false },
      ]),
      { PORT: '8080' },
    );
    expect(out.map((f) => ({ ...f, data: Buffer.from(f.data).toString() }))).toEqual([
      { path: 'conf/a.conf', data: 'port=8080\n', mode: 0o600 },
      { path: 'b.conf', data: 'port={{PORT}}\n' },
    ]);
  });

  it('fails with the reason for a missing, tampered or digest-less file', async () => {
    const missing = uniqueName('missing');
    await expect(prepare(await refs([{ name: missing, path: 'x', template: false }]), {})).rejects.toThrow(`file "${missing}" is not in the grid-files store`);

    const name = uniqueName('tampered');
    await files.put(admin, { name }, chunksOf(Buffer.from('good\n')));
    const recorded = await refs([{ name, path: 'x', template: false }]);
    // Content and the digest beside it both rewritten in the object store: etcd's record still holds.
    const os = await new Objm(nc).open('grid-files');
    await os.putBlob({ name, metadata: { 'grid-digest': sha(Buffer.from('evil\n')) } }, Buffer.from('evil\n'));
    expect((await os.info(name))?.metadata?.['grid-digest']).toBe(sha(Buffer.from('evil\n')));
    await expect(prepare(recorded, {})).rejects.toThrow(
      new RegExp(`^file "${name}" was tampered with: digest mismatch \\(stored ${sha(Buffer.from('good\n'))}, content ${sha(Buffer.from('evil\n'))}\\)`),
    );
    // files get checks against etcd's record too.
    expect(((await read(name)).info as { digest: string }).digest).toBe(sha(Buffer.from('good\n')));

    const bare = uniqueName('bare');
    await os.putBlob({ name: bare }, Buffer.from('no digest\n'));
    await expect(prepare(await refs([{ name: bare, path: 'x', template: false }]), {})).rejects.toThrow(/has no digest recorded by GRID/);
  });

  it('refuses templates that name a secret or an unknown argument', async () => {
    const name = uniqueName('secret');
    await files.put(admin, { name }, chunksOf(Buffer.from('pw={{PW}}\n')));
    const f = await refs([{ name, path: 'x', template: true }]);
    await expect(prepare(f, {}, ['PW'])).rejects.toThrow(/\{\{PW\}\} is a secret; secrets are not rendered into files/);
    await expect(prepare(f, { A: '1' })).rejects.toThrow(/unknown placeholder \{\{PW\}\}; the execution's arguments are A/);
  });
});
