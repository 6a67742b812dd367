// watchList, the loop behind --watch: redrawn in place on a terminal, printed on change
// otherwise, NDJSON with --output json.

import { describe, expect, it } from 'vitest';
import type { CliContext } from '../../src/cli/context.js';
import type { OutputFormat } from '../../src/cli/render.js';
import { watchList, type ListView } from '../../src/cli/watch.js';

/** Runs watchList over `views` (one per look) and returns what it printed. */
async function printed(views: Array<Omit<ListView, 'json'>>, o: { isTTY: boolean; output: OutputFormat }): Promise<string[]> {
  const out: string[] = [];
  const ctx = { output: o.output, io: { out: (s: string) => out.push(s), err: () => {}, isTTY: o.isTTY, env: {}, cwd: '/' } } as unknown as CliContext;
  const stop = new AbortController();
  let i = 0;
  await watchList(
    ctx,
    'grid-cli things list',
    async () => {
      const v = views[i++]!;
      if (i === views.length) stop.abort();
      return { ...v, json: [v.key] };
    },
    { intervalMs: 1, signal: stop.signal },
  );
  return out;
}

const views = [
  { text: 'A 1s ago', key: 'a' },
  { text: 'A 2s ago', key: 'a' },
  { text: 'A B', key: 'ab' },
];

describe('watchList', () => {
  it('prints a table only when the rows changed, without escape codes, when not on a terminal', async () => {
    expect(await printed(views, { isTTY: false, output: 'table' })).toEqual(['A 1s ago', '\nA B']);
  });

  it('clears the screen and redraws every look on a terminal', async () => {
    const out = await printed(views, { isTTY: true, output: 'table' });
    expect(out).toHaveLength(3);
    for (const [i, s] of out.entries()) {
      expect(s.startsWith('\u001b[H\u001b[2Jgrid-cli things list')).toBe(true);
      expect(s.endsWith(`\n\n${views[i]!.text}`)).toBe(true);
    }
  });

  it('prints one JSON document a line per change with --output json', async () => {
    expect(await printed(views, { isTTY: true, output: 'json' })).toEqual(['["a"]', '["ab"]']);
  });
});
