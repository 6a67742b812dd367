// Prints vitest's JSON result as one plain closing line: "Tests: N passed, N failed[, N skipped]".
// Before it, each failed test's name and the start of its failure, without colour: the end of a
// CI log is often all there is to read, and vitest's own report of a failure comes much earlier.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const FAILURE_LINES = 40;
// Colour escapes, as vitest writes them into failure messages.
const ESC = new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g');

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
for (const file of r.testResults ?? []) {
  const failed = (file.assertionResults ?? []).filter((a) => a.status === 'failed');
  // A file that failed to load has no failed test, only its message.
  if (!failed.length && file.status === 'failed' && file.message) failed.push({ fullName: '(the file itself)', failureMessages: [file.message] });
  for (const a of failed) {
    const lines = (a.failureMessages ?? []).join('\n').replace(ESC, '').split('\n')
      // vitest's own frames say nothing about the failure.
      .filter((l) => !/^\s+at (.*node_modules|new Promise)/.test(l));
    const shown = lines.slice(0, FAILURE_LINES);
    if (lines.length > FAILURE_LINES) shown.push(`… ${lines.length - FAILURE_LINES} more lines`);
    console.log(`FAILED ${relative(process.cwd(), file.name)} > ${a.fullName}\n${shown.map((l) => `  ${l}`).join('\n')}`);
  }
}
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(r.success && r.numTotalTests > 0 ? 0 : 1);
