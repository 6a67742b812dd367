// grid-cli and job definitions end to end: the real controller (on real NATS and etcd) and the
// real grid-cli, both run from dist/. Every failure must exit 1 (failure) or 2 (bad input/usage)
// and print exactly one line on stderr that names the problem.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectOneLineError,
  cleanupProcesses,
  REPO_ROOT,
  runCli,
  runProgram,
  startController,
  tempDir,
  TOKENS,
  uniquePrefix,
  writeControllerConfig,
  type RunningController,
  type RunResult,
} from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const HELLO = join(REPO_ROOT, 'config/examples/hello.json');
const OCTAVIUS = join(REPO_ROOT, 'config/examples/octavius.json');

let servers: TestServers;
let controller: RunningController;
let jobsDir: string;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  jobsDir = tempDir('grid-e2e-jobs-');
});

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

/** grid-cli as `role` (default admin); `token: null` = no --token. */
function cli(args: string[], as: keyof typeof TOKENS | null = 'admin'): Promise<RunResult> {
  return runCli(args, { address: controller.address, token: as === null ? undefined : TOKENS[as] });
}

/** Writes a metadata.json (an object, or raw text) into a temp dir and returns its path. */
function jobFile(content: unknown): string {
  const path = join(jobsDir, `${uniqueName('job')}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

/** A valid host job with a fresh name. */
function hostJob(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: uniqueName('e2e'), command: ['echo', 'hi'], ...extra };
}


function expectOk(r: RunResult): string {
  expect(r, `exit ${r.code}\nstderr: ${r.stderr}`).toMatchObject({ code: 0, stderr: '' });
  return r.stdout;
}

describe('job definitions through grid-cli', () => {
  it('creates config/examples/hello.json, lists it and describes it', async () => {
    expect(expectOk(await cli(['create', HELLO]))).toMatch(/^created job hello-world \(version 1\)\n$/);

    const list = expectOk(await cli(['list']));
    expect(list).toMatch(/^NAME\s+RUNNER\s+VERSION/);
    expect(list).toMatch(/^hello-world\s+host\s+1\s/m);

    const described = expectOk(await cli(['describe', 'hello-world']));
    expect(described).toMatch(/^Name:\s+hello-world$/m);
    expect(described).toMatch(/^Runner:\s+host$/m);
    expect(described).toMatch(/^Command:\s+echo 'hello \{\{NAME\}\}'$/m);
    expect(described).toMatch(/^Arguments:\nNAME\s+TYPE\s+REQUIRED\s+DEFAULT\s+DESCRIPTION\nNAME\s+string\s+no\s+world\s+who to greet$/m);
  });

  it('gives parseable JSON for list and describe with --output json', async () => {
    const list = JSON.parse(expectOk(await cli(['--output', 'json', 'list']))) as Array<{ name: string; version: number }>;
    expect(Array.isArray(list)).toBe(true);
    const hello = list.find((j) => j.name === 'hello-world');
    expect(hello).toMatchObject({ version: 1, runner: 'host', command: ['echo', 'hello {{NAME}}'] });

    const job = JSON.parse(expectOk(await cli(['describe', 'hello-world', '--output', 'json'])));
    // metadata.json's field names, plus the version: what create and apply take back.
    expect(job).toMatchObject({
      name: 'hello-world',
      version: 1,
      runner: 'host',
      timeout_seconds: 30,
      env_vars: { args: [{ name: 'NAME', required: false, default: 'world' }] },
    });
  });

  it("accepts Octavius's format unchanged, with --job-path and --job-name", async () => {
    expect(expectOk(await cli(['create', '--job-path', OCTAVIUS]))).toMatch(/^created job octavius-report \(version 1\)\n$/);

    const described = expectOk(await cli(['describe', '--job-name', 'octavius-report']));
    expect(described).toMatch(/^Runner:\s+kubernetes$/m);
    expect(described).toMatch(/^Image:\s+registry\.example\.com\/octavius\/report:1\.4\.2$/m);
    expect(described).toMatch(/^Contributors:\s+Grace Hopper, Alan Turing$/m);
    expect(described).toMatch(/^Groups:\s+data-team$/m);
    expect(described).toMatch(/^REPORT_DATE\s+string\s+yes\s/m);
    expect(described).toMatch(/^Secrets:\nNAME\s+REQUIRED\s+DESCRIPTION\nREPORT_DB_PASSWORD\s+no\s+password of the reporting database$/m);

    const job = JSON.parse(expectOk(await cli(['--output', 'json', 'describe', '--job-name', 'octavius-report'])));
    expect(job).toMatchObject({
      author: 'Ada Lovelace',
      contributors: ['Grace Hopper', 'Alan Turing'],
      organization: 'data-platform',
      authorized_groups: ['data-team'],
    });
  });

  it('create --replace bumps the version', async () => {
    const def = hostJob();
    const path = jobFile(def);
    expectOk(await cli(['create', path]));
    writeFileSync(path, JSON.stringify({ ...def, description: 'second edition' }));
    expect(expectOk(await cli(['create', '--replace', path]))).toBe(`replaced job ${def.name} (version 2)\n`);
    const job = JSON.parse(expectOk(await cli(['--output', 'json', 'describe', String(def.name)])));
    expect(job).toMatchObject({ version: 2, description: 'second edition' });
  });
});

describe('bad input: one line on stderr and the right exit code', () => {
  it('malformed JSON: exit 2, names file, line and column', async () => {
    const path = jobFile('{\n  "name": "broken",\n  "command": ["echo"]\n  "timeout_seconds": 5\n}\n');
    const line = expectOneLineError(await cli(['create', path]), 2);
    expect(line).toContain(`${path}:4:3: unexpected`);
  });

  it('missing name: exit 2, names the field', async () => {
    const line = expectOneLineError(await cli(['create', jobFile({ command: ['echo', 'hi'] })]), 2);
    expect(line).toMatch(/\bname\b.*missing/);
  });

  it('wrong type: exit 2, names the field and the value', async () => {
    const path = jobFile(hostJob({ timeout_seconds: '30' }));
    const line = expectOneLineError(await cli(['create', path]), 2);
    expect(line).toContain(`${path}:7:22: timeout_seconds`);
    expect(line).toMatch(/"30"/);
  });

  it('unknown field: exit 2, suggests the right one', async () => {
    const line = expectOneLineError(await cli(['create', jobFile(hostJob({ timout_seconds: 30 }))]), 2);
    expect(line).toMatch(/timout_seconds/);
    expect(line).toMatch(/did you mean "timeout_seconds"/);
  });

  it('duplicate create: exit 1, says to use --replace', async () => {
    const path = jobFile(hostJob());
    expectOk(await cli(['create', path]));
    const line = expectOneLineError(await cli(['create', path]), 1);
    expect(line).toMatch(/already exists/);
    expect(line).toMatch(/--replace/);
  });

  it('describe of an unknown job: exit 1, names it', async () => {
    const line = expectOneLineError(await cli(['describe', 'no-such-job']), 1);
    expect(line).toMatch(/"no-such-job" not found/);
  });

  it('missing token: exit 77 (refused), says no token was given', async () => {
    const line = expectOneLineError(await cli(['list'], null), 77);
    expect(line).toMatch(/no token/i);
  });

  it('wrong token: exit 77 (refused), says the token was not accepted', async () => {
    const r = await runCli(['list'], { address: controller.address, token: 'not-a-token-of-this-controller' });
    const line = expectOneLineError(r, 77);
    expect(line).toMatch(/token was not accepted/);
  });

  it('a viewer may not create: exit 77 (refused), names the role', async () => {
    const line = expectOneLineError(await cli(['create', HELLO], 'viewer'), 77);
    expect(line).toMatch(/role viewer/);
    expect(line).toMatch(/may not change jobs/);
    expect(line).toMatch(/admin/);
  });

  it('a file that does not exist: exit 2, names it', async () => {
    const missing = join(jobsDir, 'no-such-file.json');
    const line = expectOneLineError(await cli(['create', missing]), 2);
    expect(line).toContain(missing);
  });

  it('no controller at the address: exit 3 (unavailable), names the address', async () => {
    const line = expectOneLineError(await runCli(['list'], { address: '127.0.0.1:1', token: TOKENS.admin }), 3);
    expect(line).toMatch(/cannot reach the controller at 127\.0\.0\.1:1/);
  });

  it('unknown CLI option: exit 2, names it', async () => {
    const line = expectOneLineError(await cli(['list', '--colour']), 2);
    expect(line).toMatch(/unknown option '--colour'/);
  });

  it('unknown command: exit 2, names it', async () => {
    const line = expectOneLineError(await cli(['lsit']), 2);
    expect(line).toMatch(/unknown command 'lsit'/);
  });

  it('a controller config with a misspelt key: the controller exits non-zero with one line naming it', async () => {
    const configFile = writeControllerConfig({
      natsUrl: servers.natsUrl,
      etcdEndpoint: servers.etcdEndpoint,
      prefix: uniquePrefix(),
      extra: { executor_ping_dealine_seconds: 30 },
    });
    const r = await runProgram('controller', ['start', '--config', configFile, '--grpc-address', '127.0.0.1:0']);
    expect(r.code, r.stderr).not.toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/executor_ping_dealine_seconds/);
    expect(lines[0]).toMatch(/unknown key/);
    expect(lines[0]).toMatch(/did you mean "executor_ping_deadline_seconds"/);
  });
});

describe('help', () => {
  /** The commands listed under "Commands:" in a help text, without "help" itself. */
  function commandsIn(help: string): string[] {
    const section = help.split(/^Commands:\n/m)[1] ?? '';
    const names: string[] = [];
    for (const line of section.split('\n')) {
      if (line.trim() === '') break;
      const m = /^ {2}(\S+)/.exec(line);
      if (m && m[1] !== 'help') names.push(m[1]!);
    }
    return names;
  }

  it('every grid-cli command has an example in its --help', async () => {
    const seen: string[] = [];
    const visit = async (path: string[]): Promise<void> => {
      const r = await runCli([...path, '--help'], { address: '127.0.0.1:1' });
      expect(r.code, `${path.join(' ')} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout, `grid-cli ${path.join(' ')} --help`).toMatch(/Example/);
      seen.push(path.join(' '));
      for (const sub of commandsIn(r.stdout)) await visit([...path, sub]);
    };
    await visit([]);
    // The foundation's commands at least; later ones are found through the help itself.
    expect(seen).toEqual(expect.arrayContaining(['', 'create', 'describe', 'list', 'delete', 'config', 'config set', 'config show']));
  });
});
