// The problems of a ValidationError as an operator reads them, for tests of validation rules.

import { expect } from 'vitest';
import { ValidationError } from '../../src/errors.js';

/** Runs `fn`, which must throw a ValidationError; returns its problems as `path: message`. */
export function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as ValidationError).problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
  }
  throw new Error('expected a ValidationError');
}
