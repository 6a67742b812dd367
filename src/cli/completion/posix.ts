// The bash and zsh completion scripts. Both share one core written in the part of the shell
// language the two have in common: it walks the words before the cursor through the command
// tree (subcommands, options that take a value) and prints the candidates for the word under it.
// Each shell's own wrapper filters them: bash with compgen, zsh with compadd.

import { allCommands, type CommandSpec, type OptionSpec, type ValueSpec } from './tree.js';

/** `grid-cli` → `__grid_cli`: a prefix for the script's functions. */
export function functionPrefix(program: string): string {
  return `__${program.replace(/[^A-Za-z0-9]/g, '_')}`;
}

/** A word in single quotes. */
export function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function bashScript(program: string, root: CommandSpec): string {
  const f = functionPrefix(program);
  return `# bash completion for ${program}: source <(${program} completion bash)
${core(program, root)}

${f}_bash() {
  local ${f}_prog="\${COMP_WORDS[0]}" i w cur pre
  local -a words=()
  for ((i = 1; i <= COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    # bash splits node:web-1 at the colon (COMP_WORDBREAKS): join the pieces again.
    if [[ \${#words[@]} -gt 0 && ( $w == : || \${words[-1]} == *: ) ]]; then
      words[-1]+="$w"
    else
      words+=("$w")
    fi
  done
  cur="\${words[-1]}"
  COMPREPLY=($(compgen -W "$(${f}_candidates "$cur" "\${words[@]:0:\${#words[@]}-1}")" -- "$cur"))
  # What bash replaces is only the part after the last colon.
  if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
    pre="\${cur%"\${cur##*:}"}"
    COMPREPLY=("\${COMPREPLY[@]#"$pre"}")
  fi
}
complete -o default -F ${f}_bash ${program}
`;
}

export function zshScript(program: string, root: CommandSpec): string {
  const f = functionPrefix(program);
  return `#compdef ${program}
# zsh completion for ${program}: ${program} completion zsh > "\${fpath[1]}/_${program}"
${core(program, root)}

_${program}() {
  local ${f}_prog="\${words[1]}" cur="\${words[CURRENT]}"
  local -a cands
  cands=($(${f}_candidates "$cur" "\${(@)words[2,CURRENT-1]}"))
  if (( \${#cands} )); then
    compadd -a cands
  else
    _files
  fi
}

if [ "$funcstack[1]" = "_${program}" ]; then
  _${program} "$@"
else
  compdef _${program} ${program}
fi
`;
}

/** The functions both shells run: the tree as case statements, and the walk over the words. */
function core(program: string, root: CommandSpec): string {
  const f = functionPrefix(program);
  const commands = allCommands(root);
  const key = (c: CommandSpec) => sq(c.path.join(' '));
  const arms = (lines: string[]) => lines.map((l) => `    ${l}`).join('\n');

  const subcommands = commands.filter((c) => c.subcommands.length).map((c) => `${key(c)}) echo ${sq(c.subcommands.map((s) => s.path.at(-1)).join(' '))} ;;`);
  const options = commands.map((c) => `${key(c)}) echo ${sq(c.options.flatMap((o) => o.flags.filter((x) => x.startsWith('--'))).join(' '))} ;;`);
  const optionValues = commands.flatMap((c) => valueArms(c.options.filter((o) => o.takesValue), (o) => o.flags.map((x) => sq(`${c.path.join(' ')}|${x}`)), 'return 0'));
  const argumentValues = commands.flatMap((c) =>
    c.args.flatMap((a, i) => (valueOutput(a) ? [`${sq(`${c.path.join(' ')}|${i}`)}) ${valueOutput(a)} ;;`] : [])),
  );
  const globals = root.options.filter((o) => o.takesValue).flatMap((o) => o.flags);

  return `
# The subcommands of command $1 (its words, space-separated; '' is ${program} itself).
${f}_subcommands() {
  case "$1" in
${arms(subcommands)}
  esac
}

# The long options command $1 takes.
${f}_options() {
  case "$1" in
${arms(options)}
  esac
}

# The values of option $2 of command $1, one a line (@KIND: names from the controller);
# fails for an option that takes no value.
${f}_option_values() {
  case "$1|$2" in
${arms(optionValues)}
    *) return 1 ;;
  esac
}

# The values of positional argument $2 (from 0) of command $1.
${f}_argument_values() {
  case "$1|$2" in
${arms(argumentValues)}
  esac
}

# Prints values as ${f}_option_values gives them, each after prefix $3; @KIND asks the
# controller through the hidden __complete command, with the global options $2 of the line
# (it prints nothing when the controller cannot be reached).
${f}_values() {
  local v
  case "$1" in
    @*) eval "\\"\\$${f}_prog\\" __complete \${1#@} $2" 2>/dev/null ;;
    *) printf '%s\\n' "$1" ;;
  esac | while IFS= read -r v; do
    [ -n "$v" ] && printf '%s\\n' "$3$v"
  done
}

# The candidates for the word $1, given the words before it ($2…, without the program).
${f}_candidates() {
  local cur="$1" cmdpath="" npos=0 w values globals=""
  shift
  while [ $# -gt 0 ]; do
    w="$1"
    shift
    case "$w" in
      -*=*) ;;
      -*)
        if values="$(${f}_option_values "$cmdpath" "$w")"; then
          if [ $# -eq 0 ]; then
            ${f}_values "$values" "$globals" ""
            return
          fi
          case "$w" in
            ${globals.join('|') || "''"}) globals="$globals $(printf '%q %q' "$w" "$1")" ;;
          esac
          shift
        fi
        ;;
      *)
        case " $(${f}_subcommands "$cmdpath") " in
          *" $w "*) [ "$npos" -eq 0 ] && cmdpath="\${cmdpath:+$cmdpath }$w" || npos=$((npos + 1)) ;;
          *) npos=$((npos + 1)) ;;
        esac
        ;;
    esac
  done
  case "$cur" in
    -*=*)
      values="$(${f}_option_values "$cmdpath" "\${cur%%=*}")" && ${f}_values "$values" "$globals" "\${cur%%=*}="
      ;;
    -*) ${f}_options "$cmdpath" ;;
    *)
      [ "$npos" -eq 0 ] && ${f}_subcommands "$cmdpath"
      ${f}_values "$(${f}_argument_values "$cmdpath" "$npos")" "$globals" ""
      ;;
  esac
}`;
}

/** What the case arm of a value prints: the choices one a line, or @KIND; '' when nothing is known. */
function valueOutput(v: ValueSpec): string {
  if (v.names) return `echo ${sq(`@${v.names}`)}`;
  if (v.choices) return `printf '%s\\n' ${v.choices.map(sq).join(' ')}`;
  return '';
}

/** One case arm per option (options with nothing to offer share one arm that prints nothing). */
function valueArms(opts: OptionSpec[], patterns: (o: OptionSpec) => string[], empty: string): string[] {
  const known = opts.filter((o) => valueOutput(o)).map((o) => `${patterns(o).join('|')}) ${valueOutput(o)} ;;`);
  const free = opts.filter((o) => !valueOutput(o)).flatMap(patterns);
  return free.length ? [...known, `${free.join('|')}) ${empty} ;;`] : known;
}
