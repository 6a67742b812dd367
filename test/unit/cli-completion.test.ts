// The completion scripts follow the command tree: a command, option or choice added to it is
// completed with nothing listed anywhere else; the script is checked in a real bash.

import { spawnSync } from 'node:child_process';
import { Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, runCli } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/context.js';
import { fishScript } from '../../src/cli/completion/fish.js';
import { bashScript } from '../../src/cli/completion/posix.js';
import { commandSpec } from '../../src/cli/completion/tree.js';

function io(): CliIO & { outText: string[]; errText: string[] } {
  const outText: string[] = [];
  const errText: string[] = [];
  return { outText, errText, out: (s) => outText.push(s), err: (s) => errText.push(s), isTTY: false, env: {}, cwd: process.cwd() };
}

/** COMPREPLY of the bash script for `words` (the last one being completed). */
function bashComplete(script: string, words: string[]): string[] {
  const program = [
    script,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '$(complete -p grid-cli | sed -E "s/.*-F ([^ ]+).*/\\1/")',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', program], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('completion scripts from the command tree', () => {
  it('complete a command added to the tree, its options and their choices', () => {
    const program = buildProgram(io());
    program
      .command('frobnicate')
      .description('a command no script was written for')
      .addOption(new Option('--level <level>', 'how hard').choices(['low', 'high']));
    const bash = bashScript('grid-cli', commandSpec(program));
    expect(bashComplete(bash, ['grid-cli', 'frob'])).toEqual(['frobnicate']);
    expect(bashComplete(bash, ['grid-cli', 'frobnicate', '--le'])).toEqual(['--level']);
    expect(bashComplete(bash, ['grid-cli', 'frobnicate', '--level', ''])).toEqual(['high', 'low']);
    const fish = fishScript('grid-cli', commandSpec(program));
    expect(fish).toContain("-a 'frobnicate' -d 'a command no script was written for'");
    expect(fish).toContain("-l level -r -f -a 'low high' -d 'how hard'");
  });

  it('leaves hidden commands out of the scripts and out of --help', async () => {
    const spec = commandSpec(buildProgram(io()));
    expect(spec.subcommands.map((c) => c.path[0])).toContain('completion');
    expect(spec.subcommands.map((c) => c.path[0])).not.toContain('__complete');
    const help = io();
    expect(await runCli(['--help'], help)).toBe(0);
    expect(help.outText.join('\n')).toMatch(/completion <shell>/);
    expect(help.outText.join('\n')).not.toContain('__complete');
  });

  it('shows how to install the script for each shell in completion --help', async () => {
    const help = io();
    expect(await runCli(['completion', '--help'], help)).toBe(0);
    const text = help.outText.join('\n');
    expect(text).toContain('source <(grid-cli completion bash)');
    expect(text).toContain('grid-cli completion zsh > "${fpath[1]}/_grid-cli"');
    expect(text).toContain('grid-cli completion fish > ~/.config/fish/completions/grid-cli.fish');
  });

  it('refuses an unknown shell with one line naming the valid ones (exit 2)', async () => {
    const out = io();
    expect(await runCli(['completion', 'tcsh'], out)).toBe(2);
    expect(out.outText).toEqual([]);
    expect(out.errText).toHaveLength(1);
    expect(out.errText[0]).toMatch(/tcsh.*bash, zsh, fish/);
  });

  it('prints nothing and exits 0 from __complete when the controller cannot be reached', async () => {
    const out = io();
    out.env = { GRID_CONTROLLER: '127.0.0.1:1', GRID_TOKEN: 't', GRID_PLAINTEXT: '1' };
    expect(await runCli(['__complete', 'jobs'], out)).toBe(0);
    expect(out.outText).toEqual([]);
    expect(out.errText).toEqual([]);
  });
});
