// The limits' rules: each refusal is one line naming the value, the limit and its config key;
// the stream quota gives a slot back however a stream ends; the config section's defaults.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadControllerConfig } from '../../src/config/index.js';
import { resolveArgs } from '../../src/domain/args.js';
import type { JobDefinition } from '../../src/domain/job.js';
import { parseJobDefinition } from '../../src/domain/jobdef.js';
import { checkDefinitionSize, checkTaskCount, groupCountProblem, LIMIT_DEFAULTS } from '../../src/domain/limits.js';
import { StreamQuota } from '../../src/controller/stream-quota.js';
import { ConfigError, ExitCode, fromGrpcStatus, GrpcCode, LimitExceededError, toExitCode, toGrpcCode, ValidationError } from '../../src/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function refusal(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('not refused');
}

const def: JobDefinition = parseJobDefinition(
  JSON.stringify({
    name: 'db-backup',
    description: 'd',
    command: ['true'],
    env_vars: { args: [{ name: 'DATABASE', description: 'd', pattern: '[a-z]+' }, { name: 'NOTE', description: 'd' }], secrets: [{ name: 'DB_PASSWORD', description: 'd' }] },
  }),
);

describe('argument sizes', () => {
  it('one argument over limits.arg_bytes is refused with its name, its size and the limit', () => {
    const err = refusal(() => resolveArgs(def, { DATABASE: 'a'.repeat(Math.round(2.1 * MiB)) }, { limits: LIMIT_DEFAULTS }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe('args.DATABASE: is 2.1 MiB; the limit is 64 KiB (limits.arg_bytes)');
  });

  it('a secret too; its value is never shown', () => {
    const err = refusal(() => resolveArgs(def, { DB_PASSWORD: 'hunter2'.repeat(10_000) }, { limits: LIMIT_DEFAULTS }));
    expect(err.message).toBe('args.DB_PASSWORD: is 68.4 KiB; the limit is 64 KiB (limits.arg_bytes)');
  });

  it('all of them over limits.execution_args_bytes, names and values counted', () => {
    const l = { arg_bytes: 64 * KiB, execution_args_bytes: 100 * KiB };
    const err = refusal(() => resolveArgs(def, { DATABASE: 'a'.repeat(60 * KiB), NOTE: 'b'.repeat(60 * KiB) }, { limits: l }));
    expect(err.message).toBe('args: all together (names and values) is 120 KiB; the limit is 100 KiB (limits.execution_args_bytes)');
  });

  it('a size that rounds to the limit is shown in bytes', () => {
    const err = refusal(() => resolveArgs(def, { NOTE: 'a'.repeat(64 * KiB + 1) }, { limits: LIMIT_DEFAULTS }));
    expect(err.message).toBe('args.NOTE: is 65,537 bytes; the limit is 65,536 bytes (64 KiB) (limits.arg_bytes)');
  });

  it('within the limits the arguments are checked as before', () => {
    expect(resolveArgs(def, { DATABASE: 'orders' }, { limits: LIMIT_DEFAULTS }).args).toEqual({ DATABASE: 'orders' });
  });
});

describe('definition size', () => {
  it('a definition over limits.definition_bytes is refused before it is parsed', () => {
    const err = refusal(() => checkDefinitionSize(`{"name":"big","description":"${'d'.repeat(300 * KiB)}"}`, LIMIT_DEFAULTS));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe('definition: is 300 KiB; the limit is 256 KiB (limits.definition_bytes)');
  });
});

describe('tasks per execution', () => {
  it('a target that makes more tasks than limits.tasks_per_execution is refused with the count and the limit', () => {
    expect(() => checkTaskCount('all', 10_000, LIMIT_DEFAULTS)).not.toThrow();
    const err = refusal(() => checkTaskCount('all', 12_000, LIMIT_DEFAULTS));
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(err.message).toBe('target all makes 12,000 tasks; the limit is 10,000 (limits.tasks_per_execution): narrow the target (group:G, node:NAME) or raise the limit');
  });
});

describe('groups per executor', () => {
  it('more groups than limits.groups_per_executor is a problem naming the count and the limit', () => {
    const groups = Array.from({ length: 65 }, (_, i) => `g${i}`);
    expect(groupCountProblem(groups.slice(0, 64), LIMIT_DEFAULTS)).toBeUndefined();
    expect(groupCountProblem(groups, LIMIT_DEFAULTS)).toEqual({ path: 'groups', message: '65 groups; the limit is 64 (limits.groups_per_executor)' });
  });
});

describe('streams per token', () => {
  /** A stream that stays open until `end` is called, as a followed log does. */
  function openStream(): { source: () => AsyncIterable<number>; end: () => void } {
    let end!: () => void;
    const ended = new Promise<void>((r) => (end = r));
    return {
      source: async function* () {
        yield 1;
        await ended;
      },
      end,
    };
  }

  it('the one past limits.streams_per_token is refused; the count goes down when a stream ends, however it ends', async () => {
    const quota = new StreamQuota({ streams_per_token: 64 });
    const ops = { name: 'ops' };
    const streams = Array.from({ length: 64 }, () => openStream());
    const iterators = streams.map((s) => quota.hold(ops, s.source)[Symbol.asyncIterator]());
    for (const it of iterators) expect(await it.next()).toEqual({ value: 1, done: false });
    expect(quota.count(ops)).toBe(64);

    const err = await quota.hold(ops, openStream().source)[Symbol.asyncIterator]().next().then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(err!.message).toBe('"ops" has 64 GetLogs and WatchExecution streams open; the limit is 64 (limits.streams_per_token); end one (a grid-cli getlogs, execute --wait or --follow still running) or raise the limit');
    expect(toGrpcCode(err)).toBe(GrpcCode.RESOURCE_EXHAUSTED);
    // Another token has its own count.
    expect(await quota.hold({ name: 'ci' }, openStream().source)[Symbol.asyncIterator]().next()).toEqual({ value: 1, done: false });

    // A stream that ends by itself,
    streams[0]!.end();
    expect(await iterators[0]!.next()).toEqual({ value: undefined, done: true });
    expect(quota.count(ops)).toBe(63);
    // one whose caller goes away (break out of for-await),
    await iterators[1]!.return!();
    expect(quota.count(ops)).toBe(62);
    // and one that fails.
    const failing = quota.hold(ops, async function* () {
      throw new Error('etcd went away');
    });
    await expect(failing[Symbol.asyncIterator]().next()).rejects.toThrow('etcd went away');
    expect(quota.count(ops)).toBe(62);
    // The slots freed are there to take again.
    const again = quota.hold(ops, openStream().source)[Symbol.asyncIterator]();
    expect(await again.next()).toEqual({ value: 1, done: false });
    expect(quota.count(ops)).toBe(63);
  });
});

describe('the error class', () => {
  it('is RESOURCE_EXHAUSTED on the wire, rebuilt as itself by a client, and exit code 1 (a failure, not usage or unavailable)', () => {
    const err = new LimitExceededError('tasks_per_execution', 'too many');
    expect(toGrpcCode(err)).toBe(GrpcCode.RESOURCE_EXHAUSTED);
    const back = fromGrpcStatus(GrpcCode.RESOURCE_EXHAUSTED, 'too many', 'resource_exhausted');
    expect(back).toBeInstanceOf(LimitExceededError);
    expect(back.message).toBe('too many');
    expect(fromGrpcStatus(GrpcCode.RESOURCE_EXHAUSTED, 'grpc: message larger than max')).toBeInstanceOf(LimitExceededError);
    expect(toExitCode(err)).toBe(ExitCode.FAILURE);
  });
});

describe('the limits section of the controller config', () => {
  it('has the defaults, takes a file and GRID_LIMITS_* variables, and rejects unknown keys and bad values by name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grid-limits-'));
    try {
      expect(loadControllerConfig({ env: {}, cwd: dir }).limits).toEqual(LIMIT_DEFAULTS);
      const file = join(dir, 'controller.json');
      writeFileSync(file, JSON.stringify({ limits: { arg_bytes: 4096, tasks_per_execution: 500 } }));
      const cfg = loadControllerConfig({ file, env: { GRID_LIMITS_STREAMS_PER_TOKEN: '8' }, cwd: dir });
      expect(cfg.limits).toMatchObject({ arg_bytes: 4096, tasks_per_execution: 500, streams_per_token: 8, groups_per_executor: 64 });

      writeFileSync(file, JSON.stringify({ limits: { arg_byte: 4096 } }));
      const unknown = refusal(() => loadControllerConfig({ file, env: {}, cwd: dir }));
      expect(unknown).toBeInstanceOf(ConfigError);
      expect(unknown.message).toBe('config limits.arg_byte: unknown key (did you mean "arg_bytes"?)');
      const low = refusal(() => loadControllerConfig({ env: { GRID_LIMITS_DEFINITION_BYTES: '1000' }, cwd: dir }));
      expect(low.message).toBe('config GRID_LIMITS_DEFINITION_BYTES: 1000 must be a whole number ≥ 1024');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
