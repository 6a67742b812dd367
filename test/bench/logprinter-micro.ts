// Micro-benchmark of grid-cli's log printer alone: MB of 100-byte lines in GetLogs-sized chunks
// through LogPrinter into this process's stdout, as `grid-cli getlogs` prints them. Prints the
// wall time and the CPU time spent on stderr; point stdout at /dev/null or a pipe.
//
// node dist/test/bench/logprinter-micro.js [--mb 100] [--chunk-kib 512] [--prefix] > /dev/null

import { parseArgs } from 'node:util';
import { LogPrinter } from '../../src/cli/logprinter.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '100' },
    'chunk-kib': { type: 'string', default: '512' },
    prefix: { type: 'boolean', default: false },
  },
});
const total = Number(values.mb) * 1024 * 1024;
const chunkBytes = Number(values['chunk-kib']) * 1024;
const line = `${'x'.repeat(99)}\n`;
const data = Buffer.from(line.repeat(Math.ceil(chunkBytes / line.length))).subarray(0, chunkBytes);
const printer = new LogPrinter(
  { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) },
  { prefix: values.prefix ? 'yes' : 'no' },
);

const t0 = performance.now();
const cpu0 = process.cpuUsage();
for (let n = 0; n < total; n += chunkBytes) printer.write({ executorId: 'e1', executorName: 'node-1', stream: 'stdout', data });
printer.flush();
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
const cpu = process.cpuUsage(cpu0);
const ms = performance.now() - t0;
process.stderr.write(`${values.mb} MB in ${values['chunk-kib']} KiB chunks: ${ms.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU, ${(Number(values.mb) / (ms / 1000)).toFixed(0)} MB/s\n`);
