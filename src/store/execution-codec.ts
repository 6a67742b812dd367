// How an execution record is kept in etcd. A small record is its JSON, readable with etcdctl. A
// large one (a fan-out's record grows about 280 bytes a task, and etcd takes no request over its
// --max-request-bytes, 1.5 MiB by default) is that JSON compressed with raw deflate, behind a
// one-byte tag no JSON text starts with: ten thousand finished tasks then take about 450 KB
// rather than 2.8 MB, so a fan-out over every executor `tasks_per_execution` allows fits in
// etcd's default limit. Deflate at level 1 costs about as much as the JSON.stringify before it
// (about 7 ms for 2.8 MB). Records written as plain JSON, by older versions or by anyone, are
// read as they are.

import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { Execution } from '../domain/execution.js';

/** The first byte of a compressed record; JSON text never starts with it. */
const DEFLATED = 0x01;
/** Records whose JSON is at least this long are compressed. */
export const COMPRESS_FROM_BYTES = 16 * 1024;

export function encodeExecution(x: Execution): Buffer {
  const json = Buffer.from(JSON.stringify(x));
  if (json.length < COMPRESS_FROM_BYTES) return json;
  const z = deflateRawSync(json, { level: 1 });
  return Buffer.concat([Buffer.of(DEFLATED), z]);
}

export function decodeExecution(value: Buffer): Execution {
  const json = value[0] === DEFLATED ? inflateRawSync(value.subarray(1)) : value;
  return JSON.parse(json.toString()) as Execution;
}
