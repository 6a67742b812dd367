import { describe, it, expect } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { parseArgPairs, resolveArgs } from '../../src/domain/args.js';
import { validateJobDefinition } from '../../src/domain/jobdef.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as ValidationError).problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
  }
  throw new Error('expected a ValidationError');
}

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
  it('accepts K=V items and Octavius comma lists', () => {
    expect(parseArgPairs(['COUNT=3', 'SIZE=large,DRY_RUN=yes', 'EXPR=a=b'])).toEqual({
      COUNT: '3',
      SIZE: 'large',
      DRY_RUN: 'yes',
      EXPR: 'a=b',
    });
  });

  it('keeps a comma in a value when the part after it has no "="', () => {
    expect(parseArgPairs(['HOSTS=web-1,web-2,MODE=fast'])).toEqual({ HOSTS: 'web-1,web-2', MODE: 'fast' });
    expect(parseArgPairs(['NOTE='])).toEqual({ NOTE: '' });
    expect(problemsOf(() => parseArgPairs(['A=1,=2']))).toEqual(['args: "=2" in "A=1,=2" has an empty name; write KEY=VALUE']);
  });

  it('rejects items without "=", empty names and repeated keys', () => {
    expect(problemsOf(() => parseArgPairs(['COUNT', '=3', 'A=1', 'A=2']))).toEqual([
      'args: "COUNT" is not KEY=VALUE; write e.g. COUNT=3 or COUNT=3,MODE=fast',
      'args: "=3" has an empty name; write KEY=VALUE',
      'args.A: given more than once (in "A=1" and "A=2")',
    ]);
  });
});
