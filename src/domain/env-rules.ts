// What a job's arguments may do to the process that runs them: the environment names that change
// how a process loads or finds code (refused unless the definition allows them), and the rule
// that a secret never goes into argv. Kept here once for definitions and runners alike.

/**
 * Names read by the dynamic loader, by interpreters and shells at start-up, or by tools that run
 * a command they name. Set by whoever executes a job, each of them can make the job run code
 * of that caller's choosing instead of the definition's.
 */
const RESTRICTED_NAMES: ReadonlySet<string> = new Set([
  // how programs and libraries are found
  'PATH', 'HOME', 'GCONV_PATH', 'LOCPATH', 'NLSPATH', 'HOSTALIASES', 'RESOLV_HOST_CONF',
  // shells
  'BASH_ENV', 'ENV', 'IFS', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'PROMPT_COMMAND', 'CDPATH',
  // interpreters and runtimes
  'NODE_OPTIONS', 'NODE_PATH',
  'PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'PYTHONUSERBASE', 'PYTHONINSPECT', 'PYTHONBREAKPOINT',
  'PERL5LIB', 'PERLLIB', 'PERL5OPT', 'PERL5DB',
  'RUBYLIB', 'RUBYOPT', 'GEM_HOME', 'GEM_PATH',
  'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'JDK_JAVA_OPTIONS', 'CLASSPATH',
  'LUA_PATH', 'LUA_CPATH', 'LUA_INIT',
  // commands that tools run on the caller's say
  'GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_EXEC_PATH', 'GIT_ASKPASS', 'GIT_PROXY_COMMAND', 'GIT_EXTERNAL_DIFF',
  'GIT_EDITOR', 'GIT_PAGER', 'GIT_TEMPLATE_DIR', 'SSH_ASKPASS', 'EDITOR', 'VISUAL', 'PAGER',
]);

/** LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT…; DYLD_* on macOS; GIT_CONFIG_* sets any git option (core.sshCommand). */
const RESTRICTED_PREFIXES: readonly string[] = ['LD_', 'DYLD_', 'GIT_CONFIG'];

/** True for an environment name a definition may use only through `allow_env`. Case matters, as it does to the loader. */
export function isRestrictedEnvName(name: string): boolean {
  return RESTRICTED_NAMES.has(name) || RESTRICTED_PREFIXES.some((p) => name.startsWith(p));
}

/** The restricted names in short, for messages and help. */
export const RESTRICTED_ENV_SUMMARY = 'LD_*, DYLD_*, PATH, HOME, NODE_OPTIONS, PYTHONPATH, PERL5LIB, RUBYOPT, BASH_ENV, IFS, JAVA_TOOL_OPTIONS, GIT_SSH_COMMAND and the like';

/** Why `name` is refused as an argument or secret name. */
export function restrictedEnvMessage(name: string): string {
  return `${JSON.stringify(name)} changes how the process loads or finds code, so whoever executes the job could make it run other code; use another name, or list it in "allow_env" if the job must take it`;
}

/** Why a `command` element may not name a secret. */
export function secretInArgvMessage(name: string): string {
  return `{{${name}}} is a secret argument and would be visible in the process list; read it from the environment as $${name}`;
}

const TEMPLATE_NAME = /\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g;

/**
 * The first `command` element that names a secret in a `{{…}}` template, as a path and message
 * (`command[2]`, …), or undefined. Argv is readable by every user through /proc/<pid>/cmdline.
 */
export function secretInCommand(command: readonly string[], secretNames: Iterable<string>): { path: string; message: string } | undefined {
  const secrets = new Set(secretNames);
  for (const [i, part] of command.entries()) {
    for (const m of part.matchAll(TEMPLATE_NAME)) {
      if (secrets.has(m[1]!)) return { path: `command[${i}]`, message: secretInArgvMessage(m[1]!) };
    }
  }
  return undefined;
}
