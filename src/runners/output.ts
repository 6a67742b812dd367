// The output filters every runner's sink goes through, in the one order that is safe.

import { LogCap } from './logcap.js';
import { MaskingSink } from './mask.js';
import type { LogSink } from './runner.js';

export interface TaskOutputOptions {
  /** Secret values to mask (shorter than 3 characters are left alone). */
  secrets: Iterable<string>;
  /** Cap on the task's total output in bytes; 0 = no cap. */
  maxBytes: number;
}

/**
 * Wraps the sink a runner writes to: secrets are masked first, then the result is capped, so the
 * cap can never cut a secret in two and let half of it through. The runner calls finish() on the
 * returned sink once, after its last write.
 */
export function taskOutput(sink: LogSink, opts: TaskOutputOptions): LogSink {
  const capped = opts.maxBytes > 0 ? new LogCap(sink, opts.maxBytes) : sink;
  return new MaskingSink(capped, opts.secrets);
}
