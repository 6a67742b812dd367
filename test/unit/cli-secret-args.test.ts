// grid-cli argument values kept off the command line: `K=@file`, `K=-` (stdin), `K=@@…` (a
// literal "@"), and the no-echo prompt for a required secret on a terminal. Through runCli
// against a fake client (no server).

import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest } from '../../src/gen/grid/v1/controller.js';
import type { CliStdin } from '../../src/cli/arg-values.js';
import { PermissionDeniedError } from '../../src/errors.js';

const fake = vi.hoisted(() => ({ execute: vi.fn(), describeJob: vi.fn() }));

vi.mock('../../src/client/client.js', () => ({
  GridClient: class {
    readonly ctl = fake;
    close() {}
  },
}));

const { runCli } = await import('../../src/cli/main.js');

const home = mkdtempSync(join(tmpdir(), 'grid-cli-secret-'));

/** A stdin that serves `text` when piped, or answers prompts in order on a "terminal". */
function stdinOf(o: { text?: string; tty?: string[] }): CliStdin & { prompts: string[] } {
  const answers = [...(o.tty ?? [])];
  const prompts: string[] = [];
  return {
    isTTY: o.tty !== undefined,
    prompts,
    readAll: async (max) => {
      if ((o.text ?? '').length > max) throw new Error('too much');
      return o.text ?? '';
    },
    readHidden: async (prompt) => {
      prompts.push(prompt);
      return answers.shift() ?? '';
    },
  };
}

async function cli(argv: string[], stdin?: CliStdin) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    isTTY: false,
    env: { GRID_CONTROLLER: '127.0.0.1:1', GRID_TOKEN: 't', HOME: home, XDG_CONFIG_HOME: home },
    cwd: home,
    stdin,
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

const sent = (): Record<string, string> => (fake.execute.mock.calls.at(-1)![0] as ExecuteRequest).args;

function file(name: string, content: string): string {
  const path = join(home, name);
  writeFileSync(path, content);
  return path;
}

const DB_BACKUP = {
  definition: {
    name: 'db-backup',
    envVars: {
      secrets: [
        { name: 'DB_PASSWORD', description: 'password of the backup user', required: true },
        { name: 'API_TOKEN', description: '', required: false },
      ],
      args: [],
    },
  },
};

beforeEach(() => {
  fake.execute.mockReset().mockResolvedValue({ executionId: 'X', execution: undefined, dryRun: [] });
  fake.describeJob.mockReset().mockResolvedValue(DB_BACKUP);
});

describe('--arg K=@file', () => {
  it('reads the value from the file, dropping one trailing newline only', async () => {
    file('pw', 'hunter2\n');
    file('two-lines', 'line one\nline two\n\n');
    file('crlf', 'tok\r\n');
    mkdirSync(join(home, 'sub'), { recursive: true });
    file('sub/note', ' spaced ');
    const r = await cli(['execute', 'db-backup', '--arg', 'DB_PASSWORD=@pw', '--arg', `TEXT=@${join(home, 'two-lines')}`, '--arg', 'T=@crlf', '--args', 'N=@sub/note']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(sent()).toEqual({ DB_PASSWORD: 'hunter2', TEXT: 'line one\nline two\n', T: 'tok', N: ' spaced ' });
  });

  it('names the argument and the path when the file cannot be read, never a value', async () => {
    mkdirSync(join(home, 'a-dir'), { recursive: true });
    const r = await cli(['execute', 'db-backup', '--arg', 'DB_PASSWORD=@missing.txt', '--arg', 'B=@a-dir', '--arg', 'C=@']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: 3 problems: args.DB_PASSWORD: cannot read the value from missing.txt: file not found; ' +
        'args.B: cannot read the value from a-dir: is a directory, not a file; ' +
        'args.C: "@" must be followed by a file to read the value from, e.g. @./password.txt (write @@ for a value that starts with "@")',
    );
    expect(fake.execute).not.toHaveBeenCalled();
  });

  it('@@ gives a literal value starting with "@"; other values are untouched', async () => {
    const r = await cli(['execute', 'db-backup', '--arg', 'TEAM=@@ops', '--arg', 'AT=@@', '--arg', 'MAIL=a@b', '--arg', 'NEG=-1']);
    expect(r.code).toBe(0);
    expect(sent()).toEqual({ TEAM: '@ops', AT: '@', MAIL: 'a@b', NEG: '-1' });
  });
});

describe('--arg K=-', () => {
  it('reads the value from stdin, dropping one trailing newline', async () => {
    const r = await cli(['execute', 'db-backup', '--arg', 'DB_PASSWORD=-', '--arg', 'DATABASE=orders'], stdinOf({ text: 's3cret\n' }));
    expect(r.code).toBe(0);
    expect(sent()).toEqual({ DB_PASSWORD: 's3cret', DATABASE: 'orders' });
  });

  it('allows only one argument from stdin', async () => {
    const r = await cli(['execute', 'db-backup', '--arg', 'A=-', '--arg', 'B=-'], stdinOf({ text: 'x' }));
    expect(r).toMatchObject({ code: 2, stderr: 'error: args: A=- and B=-: only one argument can read stdin; give the others with @FILE' });
  });

  it('on a terminal, is typed without echo', async () => {
    const stdin = stdinOf({ tty: ['typed-pw'] });
    const r = await cli(['execute', 'db-backup', '--arg', 'DB_PASSWORD=-'], stdin);
    expect(r.code).toBe(0);
    expect(stdin.prompts).toEqual(['DB_PASSWORD: ']);
    expect(sent()).toEqual({ DB_PASSWORD: 'typed-pw' });
  });
});

describe('a required secret left out', () => {
  it('is asked for without echo on a terminal (only the required one)', async () => {
    const stdin = stdinOf({ tty: ['typed-pw'] });
    const r = await cli(['execute', 'db-backup', '--arg', 'DATABASE=orders'], stdin);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(fake.describeJob).toHaveBeenCalledWith('db-backup');
    expect(stdin.prompts).toEqual(['DB_PASSWORD (password of the backup user): ']);
    expect(sent()).toEqual({ DATABASE: 'orders', DB_PASSWORD: 'typed-pw' });
  });

  it('is not asked for when given, in a dry run, or without a terminal (the controller then refuses)', async () => {
    file('pw2', 'pw\n');
    const tty = stdinOf({ tty: [] });
    await cli(['execute', 'db-backup', '--arg', 'DB_PASSWORD=@pw2'], tty);
    await cli(['execute', 'db-backup', '--dry-run'], tty);
    expect(tty.prompts).toEqual([]);
    await cli(['execute', 'db-backup'], stdinOf({ text: '' }));
    await cli(['execute', 'db-backup']);
    expect(fake.describeJob).toHaveBeenCalledTimes(1);
    expect(fake.execute).toHaveBeenCalledTimes(4);
  });

  it('is left to execute when describe is refused', async () => {
    fake.describeJob.mockRejectedValue(new PermissionDeniedError('role operator may not jobs:read'));
    const stdin = stdinOf({ tty: [] });
    expect((await cli(['execute', 'db-backup'], stdin)).code).toBe(0);
    expect(stdin.prompts).toEqual([]);
  });
});
