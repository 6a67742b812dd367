// An audit sink that keeps its lines in memory, for tests of a door's audit lines.

import type { AuditLine, AuditSink } from '../../src/controller/audit.js';

export class MemorySink implements AuditSink {
  lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  reopen(): void {}
  close(): void {}
  /** The lines written so far, parsed. */
  parsed(): AuditLine[] {
    return this.lines.map((l) => JSON.parse(l) as AuditLine);
  }
}
