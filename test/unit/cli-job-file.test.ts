// Job definition files for create and apply: YAML or JSON, every problem at its line and column.

import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { detectFormat, parseJobFile } from '../../src/cli/job-file.js';

function problem(text: string, source: string): string {
  try {
    parseJobFile(text, source);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as Error).message;
  }
  throw new Error('expected a ValidationError');
}

const HELLO_YAML = `# says hello
name: hello-world
description: Says hello
command: [echo, "hello {{NAME}}"]
timeout_seconds: 30
env_vars:
  args:
    - name: NAME
      type: string
      default: world
      description: who to greet
`;

describe('reading a job file', () => {
  it('YAML: the same definition as its metadata.json, and the raw object that is sent', () => {
    const f = parseJobFile(HELLO_YAML, 'hello.yaml');
    expect(f.format).toBe('yaml');
    expect(f.version).toBeUndefined();
    expect(f.raw).toEqual({
      name: 'hello-world',
      description: 'Says hello',
      command: ['echo', 'hello {{NAME}}'],
      timeout_seconds: 30,
      env_vars: { args: [{ name: 'NAME', type: 'string', default: 'world', description: 'who to greet' }] },
    });
    expect(f.definition).toEqual(parseJobFile(JSON.stringify(f.raw), 'hello.json').definition);
  });

  it('takes version off what is sent and keeps it apart', () => {
    const f = parseJobFile(`version: 4\n${HELLO_YAML}`, 'hello.yaml');
    expect(f.version).toBe(4);
    expect(f.raw).not.toHaveProperty('version');
    expect(problem(`name: x\nversion: latest\ncommand: [a]\n`, 'x.yaml')).toBe(
      'x.yaml:2:10: version: "latest" must be a whole number from 1, the version grid-cli describe printed (or leave it out)',
    );
  });

  it('picks the format by extension, else JSON when the text starts with "{"', () => {
    expect(detectFormat('{}', 'a.yml')).toBe('yaml');
    expect(detectFormat('name: x', 'a.json')).toBe('json');
    expect(detectFormat('  \n {"name": "x"}', 'stdin')).toBe('json');
    expect(detectFormat('name: x', 'stdin')).toBe('yaml');
    expect(detectFormat('\ufeff{"name": "x"}', 'metadata')).toBe('json');
  });
});

describe('problems at their line and column', () => {
  it("a validation problem points at the value of its field's node", () => {
    const text = HELLO_YAML.replace('type: string', 'type: number');
    expect(problem(text, 'job.yaml')).toBe(
      'job.yaml:9:13: env_vars.args[0].type: "number" is not one of string, int, bool, enum (did you mean "int"?)',
    );
  });

  it('several problems: each located, in the order of the file', () => {
    const text = 'name: Hello_World\ntimeout_seconds: "30"\ncommand: [echo]\nfiles:\n  - {name: a.conf, path: /etc/a.conf}\n';
    const msg = problem(text, 'job.yaml');
    expect(msg).toMatch(/^3 problems: job\.yaml:1:7: name: "Hello_World" must be a DNS label/);
    expect(msg).toMatch(/; job\.yaml:2:18: timeout_seconds: "30" must be a whole number of seconds; write 30 without quotes; /);
    expect(msg).toMatch(/; job\.yaml:5:26: files\[0\]\.path: "\/etc\/a\.conf" must be a relative path/);
  });

  it('keys with dots (node_selector) and missing fields (at the map that lacks them)', () => {
    const text = 'name: pod\nimage_name: r/p:1\nnode_selector:\n  kubernetes.io/arch: 5\nretries: {backoff_seconds: 3}\n';
    expect(problem(text, 'p.yaml')).toBe(
      '2 problems: p.yaml:4:23: node_selector.kubernetes.io/arch: 5 must be a string (a label value); write "5" in quotes; ' +
        'p.yaml:5:10: retries.max_attempts: missing; say how many attempts in total, e.g. 3',
    );
  });

  it('unknown fields point at the field', () => {
    expect(problem('name: x\ncommand: [a]\ntimout_seconds: 3\n', 'x.yaml')).toMatch(/^x\.yaml:3:17: timout_seconds: .*did you mean "timeout_seconds"/);
  });

  it('YAML syntax errors and duplicate keys', () => {
    expect(problem('name: x\ncommand: [a\n', 'x.yaml')).toMatch(/^x\.yaml:\d+:\d+: .+/);
    expect(problem('name: x\ncommand: [a]\nname: y\n', 'x.yaml')).toBe('x.yaml:3:1: duplicate key "name"; each key may appear once in a map');
    expect(problem('env_vars:\n  args: []\n  args: []\nname: x\n', 'x.yaml')).toBe('x.yaml:3:3: duplicate key "args"; each key may appear once in a map');
    expect(problem('a: 1\n---\nb: 2\n', 'x.yaml')).toMatch(/^x\.yaml:2:1: .*multiple documents/);
  });

  it('not a map', () => {
    expect(problem('- name: x\n', 'x.yaml')).toBe('x.yaml:1:1: a job definition must be a map of fields (name: …), not an array');
    expect(problem('', 'x.yaml')).toBe('x.yaml: a job definition must be a map of fields (name: …), not null');
  });

  it('JSON: syntax errors from the JSON scanner, validation problems at their node', () => {
    expect(problem('{\n  "name": "x",\n  "command": ["a"]\n  "timeout_seconds": 5\n}\n', 'm.json')).toBe(
      'm.json:4:3: unexpected "timeout_seconds"; expected "," or "}" (is a comma missing after the previous field?)',
    );
    expect(problem('{\n  "name": "x",\n  "command": ["a"],\n  "timeout_seconds": "30"\n}\n', 'm.json')).toBe(
      'm.json:4:22: timeout_seconds: "30" must be a whole number of seconds; write 30 without quotes',
    );
  });
});
