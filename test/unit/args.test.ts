import { describe, it, expect } from 'vitest';
import { problemsOf } from '../harness/problems.js';
import { parseArgPairs, resolveArgs } from '../../src/domain/args.js';
import { validateJobDefinition } from '../../src/domain/jobdef.js';

const def = validateJobDefinition({
  name: 'resize',
  command: ['resize', '--count={{COUNT}}'],
  env_vars: {
    secrets: [{ name: 'API_TOKEN', description: 'token for the image API' }],
    args: [
      { name: 'COUNT', description: 'how many', type: 'int', required: true },
      { name: 'DRY_RUN', type: 'bool', default: false },
      { name: 'SIZE', type: 'enum', values: ['small', 'medium', 'large'], default: 'medium' },
      { name: 'BUCKET', description: 'bucket to read from', required: true, pattern: '[a-z0-9-]+' },
      { name: 'NOTE' },
    ],
  },
});

describe('resolveArgs', () => {
  it('applies defaults, normalises bools and splits secrets off', () => {
    expect(resolveArgs(def, { COUNT: '-3', BUCKET: 'photos', DRY_RUN: 'YES', API_TOKEN: 's3cret' })).toEqual({
      args: { COUNT: '-3', BUCKET: 'photos', DRY_RUN: 'true', SIZE: 'medium' },
      secrets: { API_TOKEN: 's3cret' },
    });
  });

  it('a required arg with a default is not missing', () => {
    const d = validateJobDefinition({
      name: 'a',
      command: ['true'],
      env_vars: { args: [{ name: 'MODE', required: true, default: 'fast' }] },
    });
    expect(resolveArgs(d, {}).args).toEqual({ MODE: 'fast' });
  });

  it('reports every problem with the value and what is valid', () => {
    expect(
      problemsOf(() => resolveArgs(def, { COUNT: 'ten', DRY_RUN: 'maybe', SIZE: 'larg', BUCKET: 'My_Bucket', COUNTT: '1' })),
    ).toEqual([
      'args.COUNT: "ten" is not an int; use a whole number such as 3 or -1',
      'args.DRY_RUN: "maybe" is not a bool; use true or false (1, 0, yes and no also work)',
      'args.SIZE: "larg" is not one of small, medium, large (did you mean "large"?)',
      'args.BUCKET: "My_Bucket" does not match the pattern "[a-z0-9-]+" (the whole value must match)',
      'args.COUNTT: not declared by job "resize" (did you mean "COUNT"?)',
    ]);
  });

  it('reports missing required args and lists declared names for unknown keys', () => {
    expect(problemsOf(() => resolveArgs(def, { COLOUR: 'red' }))).toEqual([
      'args.COLOUR: not declared by job "resize"; it declares COUNT, DRY_RUN, SIZE, BUCKET, NOTE, API_TOKEN',
      'args.COUNT: missing; job "resize" requires it (how many)',
      'args.BUCKET: missing; job "resize" requires it (bucket to read from)',
    ]);
  });

  it('matches the pattern against the whole value', () => {
    expect(problemsOf(() => resolveArgs(def, { COUNT: '1', BUCKET: 'ok bucket' }))[0]).toContain('does not match the pattern');
  });
});

describe('parseArgPairs', () => {
  it('takes an --arg value whole, commas and "=" included', () => {
    expect(parseArgPairs({ arg: ['COUNT=3', 'LIST=a,b,MODE=fast', 'EXPR=a=b', 'NOTE='] })).toEqual({
      COUNT: '3',
      LIST: 'a,b,MODE=fast',
      EXPR: 'a=b',
      NOTE: '',
    });
  });

  it('splits Octavius --args lists at commas', () => {
    expect(parseArgPairs({ args: ['SIZE=large,DRY_RUN=yes', 'EXPR=a=b'] })).toEqual({ SIZE: 'large', DRY_RUN: 'yes', EXPR: 'a=b' });
  });

  it('keeps a comma in an --args value when the part after it has no "="', () => {
    expect(parseArgPairs({ args: ['HOSTS=web-1,web-2,MODE=fast'] })).toEqual({ HOSTS: 'web-1,web-2', MODE: 'fast' });
    expect(problemsOf(() => parseArgPairs({ args: ['A=1,=2'] }))).toEqual(['args: --args #1 has an empty name; write KEY=VALUE']);
  });

  it('rejects items without "=", empty names and repeated keys, never repeating a value', () => {
    const problems = problemsOf(() => parseArgPairs({ arg: ['hunter2', '=3', 'A=secret-1'], args: ['B=1,A=secret-2', 'x'] }));
    expect(problems).toEqual([
      'args: --arg #1 has no "="; write KEY=VALUE, e.g. COUNT=3',
      'args: --arg #2 has an empty name; write KEY=VALUE',
      'args.A: given more than once (--arg A=… and --args A=…); give it once',
      'args: --args #2 has no "="; write KEY=VALUE, e.g. COUNT=3,MODE=fast',
    ]);
    expect(problems.join('\n')).not.toMatch(/hunter2|secret-/);
  });
});

describe('resolveArgs: required secrets', () => {
  const withSecret = validateJobDefinition({
    name: 'db-backup',
    command: ['true'],
    env_vars: {
      secrets: [
        { name: 'DB_PASSWORD', description: 'password of the backup user', required: true },
        { name: 'API_TOKEN' },
      ],
    },
  });

  it('refuses to run without a required secret, naming it and how to pass it', () => {
    expect(problemsOf(() => resolveArgs(withSecret, {}))).toEqual([
      'args.DB_PASSWORD: missing; job "db-backup" requires this secret (password of the backup user); pass it from a file or stdin, e.g. grid-cli execute db-backup --arg DB_PASSWORD=@FILE',
    ]);
  });

  it('accepts it when given (an optional secret may be left out), and a dry run does not need it', () => {
    expect(resolveArgs(withSecret, { DB_PASSWORD: 'pw' })).toEqual({ args: {}, secrets: { DB_PASSWORD: 'pw' } });
    expect(resolveArgs(withSecret, {}, { requireSecrets: false })).toEqual({ args: {}, secrets: {} });
  });
});
