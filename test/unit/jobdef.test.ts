import { describe, it, expect } from 'vitest';
import type { ValidationError } from '../../src/errors.js';
import { problemsOf } from '../harness/problems.js';
import { parseJobDefinition, validateJobDefinition } from '../../src/domain/jobdef.js';

const octavius = `{
  "name": "db-backup",
  "description": "Dumps a Postgres database to object storage",
  "image_name": "registry.example.com/ops/db-backup:2.3.1",
  "author": "priya.raman",
  "contributors": "ana.silva, jon.okafor,lee.wong",
  "organization": "platform",
  "authorized_groups": ["dba", "sre"],
  "env_vars": {
    "secrets": [
      { "name": "PG_PASSWORD", "description": "password of the backup role" }
    ],
    "args": [
      { "name": "DATABASE", "description": "database to dump", "required": true },
      { "name": "BUCKET", "description": "destination bucket", "required": false }
    ]
  }
}`;

const hostJob = (extra: Record<string, unknown> = {}) => ({
  name: 'hello',
  command: ['echo', 'hello {{WHO}}'],
  env_vars: { args: [{ name: 'WHO', description: 'who to greet', required: true }] },
  ...extra,
});

describe('parseJobDefinition: Octavius format', () => {
  it('accepts an Octavius metadata.json unchanged and infers the kubernetes runner', () => {
    const def = parseJobDefinition(octavius);
    expect(def).toEqual({
      name: 'db-backup',
      description: 'Dumps a Postgres database to object storage',
      image_name: 'registry.example.com/ops/db-backup:2.3.1',
      author: 'priya.raman',
      contributors: ['ana.silva', 'jon.okafor', 'lee.wong'],
      organization: 'platform',
      authorized_groups: ['dba', 'sre'],
      env_vars: {
        secrets: [{ name: 'PG_PASSWORD', description: 'password of the backup role', required: false }],
        args: [
          { name: 'DATABASE', description: 'database to dump', required: true, type: 'string' },
          { name: 'BUCKET', description: 'destination bucket', required: false, type: 'string' },
        ],
      },
      runner: 'kubernetes',
      files: [],
    });
  });

  it('accepts contributors as an array and is idempotent on its own output', () => {
    const def = parseJobDefinition(octavius);
    expect(validateJobDefinition(JSON.parse(JSON.stringify(def)))).toEqual(def);
    expect(validateJobDefinition({ ...def, contributors: ['a', ' b '] }).contributors).toEqual(['a', 'b']);
  });
});

describe('parseJobDefinition: JSON syntax', () => {
  it('reports line and column of a trailing comma', () => {
    const text = '{\n  "name": "hello",\n  "command": ["echo"],\n}';
    expect(problemsOf(() => parseJobDefinition(text))).toEqual([
      'line 4, column 1: unexpected "}" after ","; JSON allows no comma after the last field',
    ]);
  });

  it('prefixes the source when given and locates a missing comma', () => {
    const text = '{\n  "name": "hello"\n  "command": ["echo"]\n}';
    expect(() => parseJobDefinition(text, 'jobs/hello/metadata.json')).toThrow(
      'jobs/hello/metadata.json: line 3, column 3: unexpected "command"; expected "," or "}" (is a comma missing after the previous field?)',
    );
  });

  it('explains unquoted keys, single quotes, comments and unclosed objects', () => {
    expect(problemsOf(() => parseJobDefinition('{ name: "x" }'))).toEqual([
      'line 1, column 3: unexpected "name"; field names must be in double quotes',
    ]);
    expect(problemsOf(() => parseJobDefinition(`{"name": 'x'}`))[0]).toBe(
      `line 1, column 10: unexpected "'"; JSON strings use double quotes`,
    );
    expect(problemsOf(() => parseJobDefinition('{\n // hi\n "name": "x"}'))[0]).toBe(
      'line 2, column 2: unexpected "/"; JSON does not allow comments',
    );
    expect(problemsOf(() => parseJobDefinition('{\n  "name": "x",\n  "env_vars": {\n'))[0]).toBe(
      'line 4, column 1: unexpected end of input; the object opened at line 3, column 15 is not closed',
    );
    expect(problemsOf(() => parseJobDefinition(''))[0]).toBe('line 1, column 1: the text is empty; expected a JSON object');
  });

  it('rejects a document that is not an object', () => {
    expect(problemsOf(() => parseJobDefinition('["hello"]'))).toEqual([
      'a job definition must be a JSON object ({"name": …}), not an array',
    ]);
  });
});

describe('validateJobDefinition: fields', () => {
  it('requires a name and says what one looks like', () => {
    const { name: _n, ...noName } = hostJob();
    expect(problemsOf(() => validateJobDefinition(noName))).toEqual([
      'name: missing; every job needs a name (a DNS label such as "hello-world")',
    ]);
    expect(problemsOf(() => validateJobDefinition(hostJob({ name: 'My_Job' })))).toEqual([
      'name: "My_Job" must be a DNS label: lowercase letters, digits and "-", starting with a letter, at most 63 characters, e.g. "my-job"',
    ]);
  });

  it('names the wrong JSON type and the fix', () => {
    expect(problemsOf(() => validateJobDefinition(hostJob({ timeout_seconds: '30' })))).toEqual([
      'timeout_seconds: "30" must be a whole number of seconds; write 30 without quotes',
    ]);
    expect(problemsOf(() => validateJobDefinition(hostJob({ timeout_seconds: 0 })))).toEqual([
      'timeout_seconds: 0 must be a whole number of seconds, at least 1',
    ]);
    expect(problemsOf(() => validateJobDefinition(hostJob({ name: 5, env_vars: [] })))).toEqual([
      'name: 5 must be a string',
      'env_vars: got an array; it must be an object with "secrets" and "args" lists',
    ]);
    expect(problemsOf(() => validateJobDefinition(hostJob({ authorized_groups: 'sre' })))).toEqual([
      'authorized_groups: "sre" must be an array, e.g. ["data-team"]',
    ]);
  });

  it('rejects unknown fields at every level with did-you-mean', () => {
    const def = hostJob({
      descripton: 'typo',
      env_vars: { args: [{ name: 'WHO', requird: true }] },
      retries: { max_attempts: 2, backof_seconds: 5 },
    });
    expect(problemsOf(() => validateJobDefinition(def))).toEqual([
      'descripton: unknown field (did you mean "description"?)',
      'env_vars.args[0].requird: unknown field (did you mean "required"?)',
      'retries.backof_seconds: unknown field (did you mean "backoff_seconds"?)',
    ]);
  });

  it('lists every problem in one error', () => {
    const err = (() => {
      try {
        validateJobDefinition({ name: 'x_', runner: 'hots', command: ['true'], timeout_seconds: -5 });
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error('no error');
    })();
    expect(err.problems.map((p) => p.path)).toEqual(['name', 'runner', 'timeout_seconds']);
    expect(err.message).toMatch(/^3 problems: name: "x_" must be a DNS label/);
    expect(err.message).toContain('runner: "hots" is not one of host, kubernetes (did you mean "host"?)');
  });
});

describe('validateJobDefinition: runner, command and shell', () => {
  it('infers host from command or shell, kubernetes from image_name', () => {
    expect(validateJobDefinition(hostJob()).runner).toBe('host');
    expect(validateJobDefinition({ name: 'a', shell: 'echo hi' }).runner).toBe('host');
    expect(validateJobDefinition({ name: 'a', image_name: 'busybox', command: ['echo'] }).runner).toBe('kubernetes');
  });

  it('says what to add when the runner cannot be inferred', () => {
    expect(problemsOf(() => validateJobDefinition({ name: 'a' }))).toEqual([
      'runner: missing and cannot be inferred; add "image_name" (a container image, run on Kubernetes) or "command" (an argv array such as ["echo", "hello"]) or "shell" (a script) to run on the executor\'s host',
    ]);
    expect(problemsOf(() => validateJobDefinition({ name: 'a', runner: 'kubernetes', command: ['x'] }))).toEqual([
      'image_name: missing; the kubernetes runner needs a container image, e.g. "registry.example.com/hello:1.0"',
    ]);
    expect(problemsOf(() => validateJobDefinition({ name: 'a', runner: 'host', image_name: 'busybox' }))).toEqual([
      'command: missing; the host runner needs "command" (an argv array such as ["echo", "hello"]) or "shell" (a script)',
    ]);
  });

  it('rejects a template naming an undeclared arg, with did-you-mean', () => {
    expect(problemsOf(() => validateJobDefinition(hostJob({ command: ['echo', '{{WHOO}}', '{{ WHO }}'] })))).toEqual([
      'command[1]: {{WHOO}} names no declared argument or secret (did you mean "WHO"?)',
    ]);
    expect(problemsOf(() => validateJobDefinition({ name: 'a', shell: 'echo {{X}}' }))).toEqual([
      'shell: "{{X}}": templates are not rendered in shell scripts (that would let a value inject code); use "$X" instead, every argument is an environment variable',
    ]);
  });

  it('rejects files for the kubernetes runner, which cannot place them', () => {
    expect(problemsOf(() => validateJobDefinition({ name: 'a', image_name: 'x/y:1', files: [{ name: 'f', path: 'f' }] }))).toEqual([
      'files: the kubernetes runner cannot place configuration files yet; bake them into the image or use the host runner',
    ]);
  });

  it('rejects command as a string, and command with shell', () => {
    expect(problemsOf(() => validateJobDefinition({ name: 'a', command: 'echo hi' }))).toEqual([
      'command: "echo hi" must be an array of strings; write it as an argv array, e.g. ["echo","hi"], or use "shell" for a script',
    ]);
    expect(problemsOf(() => validateJobDefinition({ name: 'a', command: ['echo'], shell: 'echo' }))).toEqual([
      'shell: cannot be used together with "command"; give either command (an argv array) or shell (a script)',
    ]);
  });
});

describe('validateJobDefinition: args and secrets', () => {
  const withArgs = (args: unknown[], secrets: unknown[] = []) => ({ name: 'a', command: ['true'], env_vars: { args, secrets } });

  it('normalises typed args and defaults', () => {
    const def = validateJobDefinition(
      withArgs([
        { name: 'COUNT', type: 'int', default: 3 },
        { name: 'DRY_RUN', type: 'bool', default: 'yes' },
        { name: 'SIZE', type: 'enum', values: ['small', 'large'], default: 'small' },
        { name: 'TAG', pattern: 'v[0-9]+', default: 'v1' },
      ]),
    );
    expect(def.env_vars.args.map((a) => [a.name, a.type, a.default])).toEqual([
      ['COUNT', 'int', '3'],
      ['DRY_RUN', 'bool', 'true'],
      ['SIZE', 'enum', 'small'],
      ['TAG', 'string', 'v1'],
    ]);
  });

  it('checks type, values, default and pattern', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition(
          withArgs([
            { name: 'A', type: 'integr' },
            { name: 'B', type: 'enum', values: ['small', 'large'], default: 'medium' },
            { name: 'C', type: 'enum' },
            { name: 'D', values: ['x'] },
            { name: 'E', pattern: '[a-z' },
            { name: 'F', type: 'int', default: 1.5 },
            { name: 'G', pattern: '[0-9]+', default: '12a' },
            { name: 'H', type: 'boolean' },
          ]),
        ),
      ),
    ).toEqual([
      'env_vars.args[0].type: "integr" is not one of string, int, bool, enum (did you mean "int"?)',
      'env_vars.args[1].default: "medium" is not one of small, large',
      'env_vars.args[2].values: missing; an enum argument needs its allowed values, e.g. ["small", "large"]',
      'env_vars.args[3].values: only allowed when type is "enum" (this argument\'s type is "string")',
      'env_vars.args[4].pattern: "[a-z" is not a valid regular expression: Unterminated character class',
      'env_vars.args[5].default: "1.5" is not an int; use a whole number such as 3 or -1',
      'env_vars.args[6].default: "12a" does not match the pattern "[0-9]+" (the whole value must match)',
      'env_vars.args[7].type: "boolean" is not one of string, int, bool, enum (did you mean "bool"?)',
    ]);
  });

  it('rejects duplicate names and names that are not environment variables', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition(withArgs([{ name: 'X' }, { name: 'X' }, { name: 'my-arg' }, { name: 'TOKEN' }], [{ name: 'TOKEN' }])),
      ),
    ).toEqual([
      'env_vars.args[2].name: "my-arg" is not a valid environment variable name: letters, digits and "_", not starting with a digit (e.g. "my_arg")',
      'env_vars.args[1].name: "X" is declared twice (also env_vars.args[0])',
      'env_vars.args[3].name: "TOKEN" is also declared as a secret (env_vars.secrets[0]); names must be unique',
    ]);
  });
});

describe('validateJobDefinition: GRID additions', () => {
  it('normalises target, serialize, retries and files', () => {
    const def = validateJobDefinition(
      hostJob({
        target: ' group:web , any ',
        serialize: true,
        retries: { max_attempts: 3 },
        timeout_seconds: 60,
        files: [{ name: 'app.conf', path: './conf//app.conf', template: true, mode: '644' }],
      }),
    );
    expect(def.target).toBe('group:web,any');
    expect(def.serialize).toBe('hello');
    expect(def.retries).toEqual({ max_attempts: 3, backoff_seconds: 0 });
    expect(def.files).toEqual([{ name: 'app.conf', path: 'conf/app.conf', template: true, mode: '0644' }]);
    expect(validateJobDefinition(hostJob({ serialize: false })).serialize).toBeUndefined();
  });

  it('validates target, serialize, retries and files', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition(
          hostJob({
            target: 'grup:web',
            serialize: 'DB lock',
            retries: { max_attempts: 0, backoff_seconds: -1 },
            files: [
              { name: 'a', path: '../etc/passwd' },
              { name: 'b', path: '/etc/hosts', mode: 644 },
            ],
          }),
        ),
      ),
    ).toEqual([
      'files[0].path: "../etc/passwd" must not contain ".."; files stay inside the job\'s working directory',
      'files[1].path: "/etc/hosts" must be a relative path using "/", e.g. "conf/app.conf"',
      'files[1].mode: 644 must be an octal mode string such as "0644" or "0755" (write "0644" in quotes)',
      'retries.max_attempts: 0 must be a whole number of attempts, at least 1',
      'retries.backoff_seconds: -1 must be a number of seconds, at least 0',
      'target: "grup:web" is not a target; use all, group:G, node:NAME, any or any:G (did you mean "group:web"?)',
      'serialize: lock name "DB lock" must be a DNS label: lowercase letters, digits and "-", starting with a letter, at most 63 characters, e.g. "db-lock"',
    ]);
  });
});
