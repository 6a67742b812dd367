// The fish completion script: `complete` rules whose conditions ask a small function where on
// the command tree the words before the cursor are (the command and how many arguments it has).

import { functionPrefix } from './posix.js';
import { allCommands, type CommandSpec, type ValueSpec } from './tree.js';

/** A word in fish's single quotes. */
function fq(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function fishScript(program: string, root: CommandSpec): string {
  const f = functionPrefix(program);
  const commands = allCommands(root);
  const at = (c: CommandSpec, npos?: number) => fq(`${f}_at ${fq(c.path.join(' '))}${npos === undefined ? '' : ` ${npos}`}`);
  const values = (v: ValueSpec) => (v.names ? ` -f -a ${fq(`(${f}_names ${v.names})`)}` : v.choices ? ` -f -a ${fq(v.choices.join(' '))}` : '');
  const rules = commands.flatMap((c) => [
    ...c.subcommands.map((s) => `complete -c ${program} -f -n ${at(c, 0)} -a ${fq(s.path.at(-1)!)} -d ${fq(s.description)}`),
    ...c.options.map((o) => {
      const long = o.flags.find((x) => x.startsWith('--'));
      const short = o.flags.find((x) => /^-[^-]$/.test(x));
      const names = `${long ? ` -l ${long.slice(2)}` : ''}${short ? ` -s ${short.slice(1)}` : ''}`;
      return `complete -c ${program} -n ${at(c)}${names}${o.takesValue ? ' -r' : ''}${values(o)} -d ${fq(o.description)}`;
    }),
    ...c.args.flatMap((a, i) => (values(a) ? [`complete -c ${program} -n ${at(c, i)}${values(a)}`] : [])),
  ]);
  const paths = commands.filter((c) => c.path.length).map((c) => fq(c.path.join(' ')));
  const valued = commands.flatMap((c) => c.options.filter((o) => o.takesValue).flatMap((o) => o.flags.map((x) => fq(`${c.path.join(' ')}|${x}`))));
  const globals = root.options.filter((o) => o.takesValue).flatMap((o) => o.flags.map(fq));

  return `# fish completion for ${program}: ${program} completion fish > ~/.config/fish/completions/${program}.fish

set -g ${f}_paths ${paths.join(' ')}
set -g ${f}_valued ${valued.join(' ')}
set -g ${f}_globals ${globals.join(' ')}

# Where the words before the cursor are: the command (its words) and, after a newline, how many
# positional arguments it has so far.
function ${f}_state
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmdpath ''
    set -l npos 0
    set -l skip 0
    for w in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '-*=*'
            case '-*'
                if contains -- "$cmdpath|$w" $${f}_valued
                    set skip 1
                end
            case '*'
                set -l sub (string trim -- "$cmdpath $w")
                if test $npos = 0; and contains -- $sub $${f}_paths
                    set cmdpath $sub
                else
                    set npos (math $npos + 1)
                end
        end
    end
    printf '%s\\n' $cmdpath $npos
end

# True when the words before the cursor are at command $argv[1] (and, if given, its argument $argv[2]).
function ${f}_at
    set -l state (${f}_state)
    test "$state[1]" = "$argv[1]"; or return 1
    test (count $argv) -lt 2; or test "$state[2]" = "$argv[2]"
end

# Names from the controller (jobs, executors, targets), asked with the global options of the line;
# nothing when it cannot be reached.
function ${f}_names
    set -l tokens (commandline -opc)
    set -l prog $tokens[1]
    set -l globals
    set -l take 0
    for w in $tokens[2..-1]
        if test $take = 1
            set -a globals $w
            set take 0
        else if contains -- $w $${f}_globals
            set -a globals $w
            set take 1
        end
    end
    command $prog __complete $argv[1] $globals 2>/dev/null
end

${rules.join('\n')}
`;
}
