// cloneJson: the store's copy of a record before a change is applied to it.

import { describe, expect, it } from 'vitest';
import { cloneJson } from '../../src/util/json-clone.js';

describe('cloneJson', () => {
  it('copies JSON data deeply: a change to the copy leaves the original as it was', () => {
    const x = { id: 'x', n: 1, ok: true, none: null, gone: undefined, tasks: [{ key: 'a', late: [{ at: 1 }] }], args: { A: 'b' } };
    const c = cloneJson(x);
    expect(c).toStrictEqual(x);
    c.tasks[0]!.late[0]!.at = 2;
    c.tasks.push({ key: 'b', late: [] });
    c.args.A = 'changed';
    expect(x).toStrictEqual({ id: 'x', n: 1, ok: true, none: null, gone: undefined, tasks: [{ key: 'a', late: [{ at: 1 }] }], args: { A: 'b' } });
  });
});
