// Generic checks for parsed JSON: field paths, unknown-field rejection with did-you-mean, and
// typed getters that record a Problem (naming the value and what is valid) instead of throwing,
// so a validator can report every problem in one pass.

import type { Problem } from '../errors.js';
import { didYouMean } from '../util/suggest.js';

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `a.b` or `b` when the base is empty. */
export function fieldPath(base: string, key: string): string {
  return base ? `${base}.${key}` : key;
}

export function itemPath(base: string, i: number): string {
  return `${base}[${i}]`;
}

/** A value as the operator wrote it, shortened: `"30"`, `1.5`, `an object`, `an array`. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (isObject(v)) return 'an object';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
}

/** The start of a "… must be X" sentence: the value itself, or "got an array; it" for composites. */
export function subject(v: unknown): string {
  return Array.isArray(v) || isObject(v) ? `got ${show(v)}; it` : show(v);
}

/** Collects problems; getters return undefined after recording one. */
export class Problems {
  readonly list: Problem[] = [];

  add(path: string, message: string): void {
    this.list.push({ path, message });
  }

  get count(): number {
    return this.list.length;
  }

  /** Reports every key of `obj` not in `allowed`, with a did-you-mean among the allowed ones. */
  unknownFields(obj: JsonObject, path: string, allowed: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) {
        const hint = didYouMean(key, allowed);
        this.add(fieldPath(path, key), `unknown field${hint || `; known fields are ${allowed.join(', ')}`}`);
      }
    }
  }

  /** Present and not null. JSON `null` counts as absent for optional fields. */
  has(obj: JsonObject, key: string): boolean {
    return obj[key] !== undefined && obj[key] !== null;
  }

  object(v: unknown, path: string, what = 'an object'): JsonObject | undefined {
    if (isObject(v)) return v;
    this.add(path, `${subject(v)} must be ${what}`);
    return undefined;
  }

  string(obj: JsonObject, key: string, path: string, opts: { nonEmpty?: boolean } = {}): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    const p = fieldPath(path, key);
    if (typeof v !== 'string') {
      this.add(p, `${subject(v)} must be a string`);
      return undefined;
    }
    if (opts.nonEmpty && v.trim() === '') {
      this.add(p, 'must not be empty');
      return undefined;
    }
    return v;
  }

  bool(obj: JsonObject, key: string, path: string): boolean | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'boolean') return v;
    const quoted = typeof v === 'string' && ['true', 'false'].includes(v.toLowerCase());
    this.add(fieldPath(path, key), `${subject(v)} must be true or false${quoted ? ' (without quotes)' : ''}`);
    return undefined;
  }

  /** An array; `example` shows a valid one, for the message when it is not an array. */
  array(obj: JsonObject, key: string, path: string, example: string): unknown[] | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (Array.isArray(v)) return v;
    this.add(fieldPath(path, key), `${subject(v)} must be an array, e.g. ${example}`);
    return undefined;
  }

  /** An array of non-empty strings; bad items are reported by index and dropped. */
  stringArray(obj: JsonObject, key: string, path: string, example: string): string[] | undefined {
    const arr = this.array(obj, key, path, example);
    if (arr === undefined) return undefined;
    const out: string[] = [];
    arr.forEach((item, i) => {
      const p = itemPath(fieldPath(path, key), i);
      if (typeof item !== 'string') this.add(p, `${subject(item)} must be a string`);
      else if (item.trim() === '') this.add(p, 'must not be empty');
      else out.push(item);
    });
    return out;
  }

  /**
   * A whole number ≥ min. `what` says what is valid ("a whole number of seconds"); a quoted
   * number gets a hint to drop the quotes.
   */
  integer(obj: JsonObject, key: string, path: string, min: number, what: string): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    const p = fieldPath(path, key);
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      const quoted = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? `; write ${v.trim()} without quotes` : '';
      this.add(p, `${subject(v)} must be ${what}${quoted}`);
      return undefined;
    }
    if (v < min) {
      this.add(p, `${show(v)} must be ${what}, at least ${min}`);
      return undefined;
    }
    return v;
  }

  /** A number ≥ min (fractions allowed). */
  number(obj: JsonObject, key: string, path: string, min: number, what: string): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    const p = fieldPath(path, key);
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      const quoted = typeof v === 'string' && /^\s*[\d.]+\s*$/.test(v) ? `; write ${v.trim()} without quotes` : '';
      this.add(p, `${subject(v)} must be ${what}${quoted}`);
      return undefined;
    }
    if (v < min) {
      this.add(p, `${show(v)} must be ${what}, at least ${min}`);
      return undefined;
    }
    return v;
  }
}

/** Names that appear more than once, each reported at its second and later occurrence. */
export function duplicates<T>(items: T[], key: (t: T) => string | undefined): Array<{ index: number; name: string; first: number }> {
  const seen = new Map<string, number>();
  const out: Array<{ index: number; name: string; first: number }> = [];
  items.forEach((item, index) => {
    const name = key(item);
    if (name === undefined) return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, index);
    else out.push({ index, name, first });
  });
  return out;
}
