// Execution records as etcd keeps them: a small one is its JSON (etcdctl shows it as it is), a
// large one is compressed behind a tag byte, and a record written as plain JSON, however large
// (by an older version), reads as it did.

import { describe, expect, it } from 'vitest';
import type { Task } from '../../src/domain/execution.js';
import { COMPRESS_FROM_BYTES, decodeExecution, encodeExecution } from '../../src/store/execution-codec.js';
import { idAt } from '../../src/util/ids.js';
import { executionRecord } from '../harness/records.js';

function fanout(n: number) {
  const tasks: Task[] = Array.from({ length: n }, (_, i) => {
    const id = idAt(1_700_000_000_000 + i * 250);
    return { key: id, executor_id: id, executor_name: `web-${i}`, state: 'SUCCEEDED', attempts: 1, exit_code: 0, started_at_ms: 1_700_000_000_000 + i, finished_at_ms: 1_700_000_000_009 + i, reason: 'exit 0', wave: 0 };
  });
  return executionRecord('X1', { tasks, args: { NAME: 'naïve ✓ unicode' } });
}

describe('the execution record codec', () => {
  it('keeps a small record as its JSON', () => {
    const x = fanout(3);
    const bytes = encodeExecution(x);
    expect(bytes.toString()).toBe(JSON.stringify(x));
    expect(decodeExecution(bytes)).toEqual(x);
  });

  it('compresses a large record, and reads it back whole', () => {
    const x = fanout(2_000);
    const json = Buffer.from(JSON.stringify(x));
    expect(json.length).toBeGreaterThan(COMPRESS_FROM_BYTES);
    const bytes = encodeExecution(x);
    expect(bytes[0]).toBe(0x01);
    expect(bytes.length).toBeLessThan(json.length / 3);
    expect(decodeExecution(bytes)).toEqual(x);
  });

  it('reads a large record stored as plain JSON', () => {
    const x = fanout(2_000);
    expect(decodeExecution(Buffer.from(JSON.stringify(x)))).toEqual(x);
    expect(decodeExecution(Buffer.from(`  \n${JSON.stringify(x)}`))).toEqual(x);
  });
});
