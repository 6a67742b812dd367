// What a definition may do to the process that runs it: no secret in argv (refused at create,
// with the field path, and again by the runners), and no environment name that changes how the
// process loads code (LD_PRELOAD, PATH…) unless `allow_env` names it.

import { describe, expect, it } from 'vitest';
import { problemsOf } from '../harness/problems.js';
import { validateJobDefinition } from '../../src/domain/jobdef.js';
import { isRestrictedEnvName } from '../../src/domain/env-rules.js';
import { containerCommand } from '../../src/runners/kubernetes/manifests.js';
import type { TaskSpec } from '../../src/runners/runner.js';

const SECRET = { name: 'DB_PASSWORD', description: 'password' };

describe('a secret in argv', () => {
  it('is refused at create with the field path, for host and kubernetes commands', () => {
    const expected = 'command[2]: {{DB_PASSWORD}} is a secret argument and would be visible in the process list; read it from the environment as $DB_PASSWORD';
    expect(problemsOf(() => validateJobDefinition({ name: 'a', command: ['pg_dump', '-W', '{{DB_PASSWORD}}'], env_vars: { secrets: [SECRET] } }))).toEqual([expected]);
    expect(problemsOf(() => validateJobDefinition({ name: 'a', image_name: 'x/y:1', command: ['pg_dump', '-W', 'pw={{ DB_PASSWORD }}'], env_vars: { secrets: [SECRET] } }))).toEqual([
      expected,
    ]);
  });

  it('is fine from the environment, and an ordinary argument may still be templated', () => {
    const def = validateJobDefinition({
      name: 'a',
      command: ['sh', '-c', 'PGPASSWORD="$DB_PASSWORD" pg_dump "$1"', 'sh', '{{DATABASE}}'],
      env_vars: { secrets: [SECRET], args: [{ name: 'DATABASE' }] },
    });
    expect(def.command).toHaveLength(5);
  });

  it('is refused by the kubernetes runner for a definition stored before the rule', () => {
    const spec = {
      definition: { name: 'a', runner: 'kubernetes', image_name: 'x', command: ['run', '{{DB_PASSWORD}}'], env_vars: { secrets: [{ ...SECRET, required: false }], args: [] } },
      args: {},
      secrets: { DB_PASSWORD: 'pw' },
    } as unknown as TaskSpec;
    expect(() => containerCommand(spec)).toThrow(/^command\[1\]: \{\{DB_PASSWORD\}\} is a secret argument/);
  });
});

describe('restricted environment names', () => {
  it('covers the loader, interpreters, shells and exec hooks, case as the loader sees it', () => {
    for (const n of ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'DYLD_INSERT_LIBRARIES', 'PATH', 'NODE_OPTIONS', 'PYTHONPATH', 'PERL5OPT', 'RUBYOPT', 'BASH_ENV', 'ENV', 'IFS', 'JAVA_TOOL_OPTIONS', 'GIT_SSH_COMMAND', 'GIT_CONFIG_COUNT']) {
      expect(isRestrictedEnvName(n), n).toBe(true);
    }
    for (const n of ['DATABASE', 'LDAP_URL', 'ENVIRONMENT', 'PATH_PREFIX', 'ld_preload', 'GIT_BRANCH', 'NODE_ENV']) {
      expect(isRestrictedEnvName(n), n).toBe(false);
    }
  });

  it('refuses LD_PRELOAD as an argument and PATH as a secret, naming the field', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition({ name: 'a', command: ['true'], env_vars: { args: [{ name: 'MODE' }, { name: 'COUNT' }, { name: 'LD_PRELOAD' }], secrets: [{ name: 'PATH' }] } }),
      ),
    ).toEqual([
      'env_vars.secrets[0].name: "PATH" changes how the process loads or finds code, so whoever executes the job could make it run other code; use another name, or list it in "allow_env" if the job must take it',
      'env_vars.args[2].name: "LD_PRELOAD" changes how the process loads or finds code, so whoever executes the job could make it run other code; use another name, or list it in "allow_env" if the job must take it',
    ]);
  });

  it('accepts one that allow_env names, and keeps the list', () => {
    const def = validateJobDefinition({ name: 'a', command: ['true'], allow_env: ['PATH'], env_vars: { args: [{ name: 'PATH' }] } });
    expect(def.allow_env).toEqual(['PATH']);
    expect(def.env_vars.args[0]!.name).toBe('PATH');
    // Allowing one name does not allow another.
    expect(problemsOf(() => validateJobDefinition({ name: 'a', command: ['true'], allow_env: ['PATH'], env_vars: { args: [{ name: 'PATH' }, { name: 'LD_PRELOAD' }] } }))).toHaveLength(1);
  });

  it('validates allow_env: names, only restricted ones, declared, once', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition({ name: 'a', command: ['true'], allow_env: ['PATH', 'my-var', 'MODE', 'LD_PRELOAD', 'PATH', 3], env_vars: { args: [{ name: 'PATH' }, { name: 'MODE' }] } }),
      ),
    ).toEqual([
      'allow_env[1]: "my-var" is not an environment variable name: letters, digits and "_", not starting with a digit',
      'allow_env[2]: "MODE" is not a restricted name and needs no allowing; only LD_*, DYLD_*, PATH, HOME, NODE_OPTIONS, PYTHONPATH, PERL5LIB, RUBYOPT, BASH_ENV, IFS, JAVA_TOOL_OPTIONS, GIT_SSH_COMMAND and the like do',
      'allow_env[5]: 3 must be a string such as "PATH"',
      'allow_env[4]: "PATH" is listed twice (also allow_env[0])',
      'allow_env[3]: "LD_PRELOAD" names no declared argument or secret; list only names the job takes',
    ]);
    expect(problemsOf(() => validateJobDefinition({ name: 'a', command: ['true'], allow_env: 'PATH' }))[0]).toMatch(/^allow_env: "PATH" must be an array/);
  });
});
