// Configuration files end to end, over real processes: `files put/list/get/rm` through grid-cli,
// a job whose template file lands rendered in each executor's working directory, and the cases
// that must fail the task before its command runs — a missing file, a file tampered with in the
// object store behind the controller's back, a placeholder with no value, a secret placeholder.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, expectOneLineError, startFleet, type Fleet } from '../harness/pipeline-fleet.js';
import { uniqueName } from '../harness/servers.js';

const TEMPLATE = 'server {\n  listen {{PORT}};\n  server_name {{ NAME }};\n  # {{not a placeholder}} stays\n}\n';
const ARGS = { secrets: [], args: [{ name: 'PORT', type: 'int', required: true }, { name: 'NAME', default: 'grid.example' }] };

let fleet: Fleet;

beforeAll(async () => {
  fleet = await startFleet();
});

afterAll(async () => {
  await fleet?.stop();
});

/** Writes `content` to a local file and `files put`s it as admin under `name`. */
async function putFile(name: string, content: string | Buffer): Promise<{ name: string; size: number; digest: string }> {
  const path = join(fleet.dir, `${name.replace(/\//g, '_')}.src`);
  writeFileSync(path, content);
  return JSON.parse(expectOk(await fleet.cli(['files', 'put', name, path, '--output', 'json'], 'admin'))) as { name: string; size: number; digest: string };
}

/** getlogs ID as lines (`[executor] text` when there were several tasks). */
async function logLines(id: string): Promise<string[]> {
  return expectOk(await fleet.cli(['getlogs', id])).split('\n').filter((l) => l !== '');
}

describe('files put / list / get / rm', () => {
  it('puts a file, shows its size and sha256 digest, and gets it back byte for byte', async () => {
    const name = `${uniqueName('app')}/settings.json`;
    const content = Buffer.concat([Buffer.from('{"a": 1}\n'), Buffer.alloc(300_000, 7), Buffer.from([0, 255, 10])]);
    const sha = `sha256:${(await import('node:crypto')).createHash('sha256').update(content).digest('hex')}`;

    const path = join(fleet.dir, 'settings.src');
    writeFileSync(path, content);
    const line = expectOk(await fleet.cli(['files', 'put', name, path], 'admin'));
    expect(line.trim()).toBe(`stored ${name}: ${content.length} bytes (293.0 KiB), ${sha}`);

    const list = JSON.parse(expectOk(await fleet.cli(['files', 'list', '--output', 'json']))) as Array<{ name: string; size: number; digest: string; modifiedAtMs: number }>;
    const entry = list.find((f) => f.name === name);
    expect(entry).toMatchObject({ name, size: content.length, digest: sha });
    expect(entry!.modifiedAtMs).toBeGreaterThan(0);
    const table = expectOk(await fleet.cli(['files', 'list']));
    expect(table.split('\n')[0]).toMatch(/^NAME\s+SIZE\s+DIGEST\s+MODIFIED$/);
    expect(table).toMatch(new RegExp(`${name}\\s+293\\.0 KiB\\s+${sha}\\s+\\d{4}-`));

    const out = join(fleet.dir, 'settings.out');
    const got = expectOk(await fleet.cli(['files', 'get', name, '--out', out]));
    expect(got).toContain('(verified)');
    expect(readFileSync(out).equals(content)).toBe(true);

    // To standard output: exactly the bytes.
    const text = `${uniqueName('motd')}.txt`;
    await putFile(text, 'line one\nline two\n');
    expect(expectOk(await fleet.cli(['files', 'get', text]))).toBe('line one\nline two\n');

    expect(expectOk(await fleet.cli(['files', 'rm', name], 'admin')).trim()).toBe(`removed file ${name}`);
    const after = JSON.parse(expectOk(await fleet.cli(['files', 'list', '--output', 'json']))) as Array<{ name: string }>;
    expect(after.map((f) => f.name)).not.toContain(name);
    expect(expectOneLineError(await fleet.cli(['files', 'get', name]), 1)).toMatch(/file ".*" not found/);
  });

  it('viewers and operators cannot put or remove files; viewers cannot read them', async () => {
    const path = join(fleet.dir, 'denied.src');
    writeFileSync(path, 'x');
    for (const who of ['viewer', 'operator'] as const) {
      expect(expectOneLineError(await fleet.cli(['files', 'put', 'denied.txt', path], who), 77)).toMatch(/may not change files; that needs role admin/);
      expect(expectOneLineError(await fleet.cli(['files', 'rm', 'denied.txt'], who), 77)).toMatch(/may not change files/);
    }
    expect(expectOneLineError(await fleet.cli(['files', 'list'], 'viewer'), 77)).toMatch(/may not read files/);
    const list = JSON.parse(expectOk(await fleet.cli(['files', 'list', '--output', 'json']))) as Array<{ name: string }>;
    expect(list.map((f) => f.name)).not.toContain('denied.txt');
  });

  it('refuses bad names, missing local files and files over 64 MiB with one clear line, exit 2', async () => {
    const path = join(fleet.dir, 'ok.src');
    writeFileSync(path, 'x');
    expect(expectOneLineError(await fleet.cli(['files', 'put', '../etc/passwd', path], 'admin'), 2)).toMatch(/must not contain "\.\."/);
    expect(expectOneLineError(await fleet.cli(['files', 'put', 'a b.conf', path], 'admin'), 2)).toMatch(/contains " "; use letters, digits/);
    expect(expectOneLineError(await fleet.cli(['files', 'put', 'x'.repeat(256), path], 'admin'), 2)).toMatch(/at most 255/);
    expect(expectOneLineError(await fleet.cli(['files', 'put', 'ok.conf', join(fleet.dir, 'nope')], 'admin'), 2)).toMatch(/cannot read .*nope: ENOENT/);
    const big = join(fleet.dir, 'big.src');
    writeFileSync(big, '');
    truncateSync(big, 64 * 1024 * 1024 + 1);
    expect(expectOneLineError(await fleet.cli(['files', 'put', 'big.bin', big], 'admin'), 2)).toBe(
      'error: size: file "big.bin" is 67108865 bytes (64.0 MiB); files in GRID are at most 64 MiB',
    );
    const list = JSON.parse(expectOk(await fleet.cli(['files', 'list', '--output', 'json']))) as Array<{ name: string }>;
    expect(list.map((f) => f.name)).not.toContain('big.bin');
  });
});

describe('a job with files', () => {
  it('renders a template with the execution\'s arguments into each executor\'s working directory', async () => {
    const name = `${uniqueName('nginx')}.conf.tmpl`;
    const put = await putFile(name, TEMPLATE);
    expect(put.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const job = await fleet.createJob({
      name: 'render',
      command: ['cat', 'conf/app.conf'],
      files: [{ name, path: 'conf/app.conf', template: true, mode: '0640' }],
      env_vars: ARGS,
      timeout_seconds: 30,
    });
    const id = await fleet.execute(job, ['--target', 'all', '--arg', 'PORT=8080', '--arg', 'NAME=web.example']);
    const s = await fleet.waitTerminal(id);
    expect(s.state, JSON.stringify(s)).toBe('SUCCEEDED');
    expect(s.tasks.map((t) => t.executorName).sort()).toEqual(['db-1', 'web-1', 'web-2']);
    const rendered = 'server {\n  listen 8080;\n  server_name web.example;\n  # {{not a placeholder}} stays\n}';
    const lines = await logLines(id);
    for (const ex of ['db-1', 'web-1', 'web-2']) {
      const mine = lines.filter((l) => l.startsWith(`[${ex}] `)).map((l) => l.slice(ex.length + 3));
      expect(mine.join('\n'), lines.join('\n')).toBe(rendered);
    }
  });

  it('a file that is not in the store fails the task with the reason; the command does not run', async () => {
    const missing = `${uniqueName('missing')}.conf`;
    const marker = join(fleet.dir, uniqueName('ran'));
    const job = await fleet.createJob({
      name: 'missing-file',
      shell: `touch ${marker}; cat app.conf`,
      files: [{ name: missing, path: 'app.conf' }],
      timeout_seconds: 30,
    });
    const id = await fleet.execute(job, ['--target', 'node:web-1']);
    const s = await fleet.waitTerminal(id);
    expect(s.state).toBe('FAILED');
    expect(s.tasks[0]).toMatchObject({ executorName: 'web-1', state: 'FAILED' });
    expect(s.tasks[0]!.reason).toContain(`file "${missing}" is not in the grid-files store`);
    expect(existsSync(marker)).toBe(false);
  });

  it('a file changed in the object store behind the controller fails the task as tampered', async () => {
    const name = `${uniqueName('tamper')}.conf`;
    await putFile(name, 'listen 80;\n');
    // Overwrite the content directly in the object store, keeping GRID's metadata (its digest).
    const nc = await fleet.servers.connectNats();
    try {
      const os = await new Objm(nc).open('grid-files');
      const info = await os.info(name);
      expect(info?.metadata?.['grid-digest']).toMatch(/^sha256:/);
      await os.putBlob({ name, metadata: info!.metadata }, new TextEncoder().encode('listen 80; include /tmp/evil;\n'));
    } finally {
      await nc.close();
    }
    const marker = join(fleet.dir, uniqueName('ran'));
    const job = await fleet.createJob({
      name: 'tampered',
      shell: `touch ${marker}; cat app.conf`,
      files: [{ name, path: 'app.conf' }],
      timeout_seconds: 30,
    });
    const id = await fleet.execute(job, ['--target', 'group:web']);
    const s = await fleet.waitTerminal(id);
    expect(s.state).toBe('FAILED');
    expect(s.tasks).toHaveLength(2);
    for (const t of s.tasks) {
      expect(t.state).toBe('FAILED');
      expect(t.reason).toMatch(new RegExp(`file "${name}" was tampered with: digest mismatch`));
    }
    expect(existsSync(marker)).toBe(false);
    // files get refuses it too.
    expect(expectOneLineError(await fleet.cli(['files', 'get', name, '--out', join(fleet.dir, 'tampered.out')]), 1)).toMatch(/does not match its digest/);
    expect(existsSync(join(fleet.dir, 'tampered.out'))).toBe(false);
  });

  it('an unknown placeholder or a secret placeholder fails the task with the reason', async () => {
    const unknown = `${uniqueName('unknown')}.tmpl`;
    await putFile(unknown, 'port={{PORT}} user={{USER_NAME}}\n');
    const secret = `${uniqueName('secret')}.tmpl`;
    await putFile(secret, 'password={{DB_PASSWORD}}\n');
    const marker = join(fleet.dir, uniqueName('ran'));
    const env = { secrets: [{ name: 'DB_PASSWORD' }], args: ARGS.args };

    const j1 = await fleet.createJob({ name: 'unknown-ph', shell: `touch ${marker}`, files: [{ name: unknown, path: 'a.conf', template: true }], env_vars: env });
    const s1 = await fleet.waitTerminal(await fleet.execute(j1, ['--target', 'node:db-1', '--arg', 'PORT=1']));
    expect(s1.state).toBe('FAILED');
    expect(s1.tasks[0]!.reason).toBe(`file "${unknown}": unknown placeholder {{USER_NAME}}; the execution's arguments are NAME, PORT`);

    const j2 = await fleet.createJob({ name: 'secret-ph', shell: `touch ${marker}`, files: [{ name: secret, path: 'b.conf', template: true }], env_vars: env });
    const s2 = await fleet.waitTerminal(await fleet.execute(j2, ['--target', 'node:db-1', '--arg', 'PORT=1', '--arg', 'DB_PASSWORD=hunter2']));
    expect(s2.state).toBe('FAILED');
    expect(s2.tasks[0]!.reason).toMatch(/\{\{DB_PASSWORD\}\} is a secret; secrets are not rendered into files/);
    expect(existsSync(marker)).toBe(false);
  });
});
