// Secret arguments stay out of every process list: given with `--arg K=@file` or `--arg K=-`,
// the value reaches the job (it prints the value's digest) but appears nowhere in `ps` or
// /proc/*/cmdline while the job runs. First the attack: the same value typed as `--arg K=V`
// shows in grid-cli's own argv while it waits, which proves the sampling can see it. And
// definitions that would put a secret into argv, or take LD_PRELOAD, are refused at create.

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExecutor, stopExecutors } from '../harness/executor-process.js';
import {
  cleanupProcesses,
  expectOneLineError,
  runCli,
  startController,
  tempDir,
  TOKENS,
  type RunningController,
  type RunResult,
} from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
let dir: string;
let job: string;
/** A word in the job's script, so its process can be recognised in `ps`. */
let jobTag: string;

const cli = (args: string[], o: { input?: string; as?: keyof typeof TOKENS } = {}): Promise<RunResult> =>
  runCli(args, { address: controller.address, token: TOKENS[o.as ?? 'operator'], input: o.input, timeoutMs: 40_000 });

function writeJob(def: Record<string, unknown>): string {
  const path = join(dir, `${uniqueName('def')}.json`);
  writeFileSync(path, JSON.stringify(def));
  return path;
}

/** The column, in writeJob's one-line file, where `text` starts: grid-cli points each problem there. */
function column(def: Record<string, unknown>, text: string): number {
  return JSON.stringify(def).indexOf(text) + 1;
}

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  await startExecutor({ controller: controller.address, name: uniqueName('sec'), groups: ['sec'], config: { runners: ['host'] } });
  dir = tempDir('grid-e2e-secrets-');
  job = uniqueName('db-backup');
  jobTag = uniqueName('tag').replace(/-/g, '_');
  const r = await cli(
    [
      'create',
      writeJob({
        name: job,
        // The value goes in through the environment only; the job shows its digest, not the value.
        shell: `: ${jobTag}; printf 'digest %s\\n' "$(printf %s "$DB_PASSWORD" | sha256sum | cut -d' ' -f1)"; sleep 3`,
        target: 'group:sec',
        env_vars: { secrets: [{ name: 'DB_PASSWORD', description: 'password', required: true }] },
      }),
    ],
    { as: 'admin' },
  );
  expect(r.code, r.stderr).toBe(0);
}, 90_000);

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

/** Everything a user of this host can see of other processes' command lines. */
function processLists(): string {
  const ps = execFileSync('ps', ['-eo', 'pid,args', '-ww'], { encoding: 'utf8' });
  const cmdlines: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      cmdlines.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
    } catch {
      // gone meanwhile
    }
  }
  return `${ps}\n${cmdlines.join('\n')}`;
}

/**
 * Runs `execute … --wait` and, while it runs, samples the process lists until the job's process
 * is seen (and a few times after). Returns the samples taken while the job ran, and the result.
 */
async function executeWatchingPs(args: string[], input?: string): Promise<{ samples: string[]; result: RunResult }> {
  let done = false;
  const run = cli(['execute', job, '--wait', ...args], { input }).finally(() => {
    done = true;
  });
  const samples: string[] = [];
  while (!done && samples.length < 5) {
    const seen = processLists();
    if (seen.includes(jobTag)) samples.push(seen);
    await delay(100);
  }
  return { samples, result: await run };
}

const digest = (v: string): string => createHash('sha256').update(v).digest('hex');

async function jobOutput(result: RunResult): Promise<string> {
  const id = /execution (\S+) /.exec(result.stdout)?.[1];
  expect(id, result.stdout).toBeTruthy();
  const logs = await cli(['getlogs', id!]);
  expect(logs.code, logs.stderr).toBe(0);
  return logs.stdout;
}

describe('secret arguments and the process list', () => {
  it('a value typed as --arg K=V is visible in ps while grid-cli waits (the attack)', async () => {
    const marker = `typed-${uniqueName('m')}`;
    const { samples, result } = await executeWatchingPs(['--arg', `DB_PASSWORD=${marker}`]);
    expect(result.code, result.stderr).toBe(0);
    expect(samples.length, 'the job was seen running').toBeGreaterThan(0);
    expect(samples.some((s) => s.includes(marker))).toBe(true);
  });

  it('--arg K=@file: the job gets the value, no process list shows it', async () => {
    const marker = `file-${uniqueName('m')}`;
    const file = join(dir, 'db-password');
    writeFileSync(file, `${marker}\n`, { mode: 0o600 });
    const { samples, result } = await executeWatchingPs(['--arg', `DB_PASSWORD=@${file}`]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/State:\s+SUCCEEDED/);
    expect(samples.length, 'the job was seen running').toBeGreaterThan(0);
    for (const s of samples) expect(s).not.toContain(marker);
    // One trailing newline dropped: the digest is the marker's alone.
    expect(await jobOutput(result)).toContain(`digest ${digest(marker)}`);
  });

  it('--arg K=-: the value comes from stdin, no process list shows it', async () => {
    const marker = `stdin-${uniqueName('m')}`;
    const { samples, result } = await executeWatchingPs(['--arg', 'DB_PASSWORD=-'], `${marker}\n`);
    expect(result.code, result.stderr).toBe(0);
    expect(samples.length, 'the job was seen running').toBeGreaterThan(0);
    for (const s of samples) expect(s).not.toContain(marker);
    expect(await jobOutput(result)).toContain(`digest ${digest(marker)}`);
  });

  it('without a terminal, a required secret left out is one clear error', async () => {
    const line = expectOneLineError(await cli(['execute', job]), 2);
    expect(line).toBe(`error: args.DB_PASSWORD: missing; job "${job}" requires this secret (password); pass it from a file or stdin, e.g. grid-cli execute ${job} --arg DB_PASSWORD=@FILE`);
  });
});

describe('definitions refused at create', () => {
  it('a secret in argv, with the field path', async () => {
    const def = { name: uniqueName('argv'), command: ['mysqldump', '-p{{DB_PASSWORD}}'], env_vars: { secrets: [{ name: 'DB_PASSWORD' }] } };
    const path = writeJob(def);
    const line = expectOneLineError(await cli(['create', path], { as: 'admin' }), 2);
    expect(line).toBe(
      `error: ${path}:1:${column(def, '"-p{{')}: command[1]: {{DB_PASSWORD}} is a secret argument and would be visible in the process list; read it from the environment as $DB_PASSWORD`,
    );
  });

  it('LD_PRELOAD as an argument, with the field path; allowed only through allow_env', async () => {
    const def = { name: uniqueName('preload'), command: ['true'], env_vars: { args: [{ name: 'MODE' }, { name: 'LD_PRELOAD' }] } };
    const path = writeJob(def);
    const line = expectOneLineError(await cli(['create', path], { as: 'admin' }), 2);
    expect(line.startsWith(`error: ${path}:1:${column(def, '"LD_PRELOAD"')}: env_vars.args[1].name: "LD_PRELOAD" changes how the process loads or finds code`), line).toBe(true);
    const allowed = await cli(['create', writeJob({ ...def, allow_env: ['LD_PRELOAD'] })], { as: 'admin' });
    expect(allowed.code, allowed.stderr).toBe(0);
  });
});
