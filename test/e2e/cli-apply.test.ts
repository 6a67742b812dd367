// grid-cli apply -f, YAML definitions and the output formats, against the real controller (on
// real NATS and etcd): describe -o yaml, edit, apply back, and the version's compare-and-swap.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { cleanupProcesses, expectOneLineError, runCli, startController, tempDir, TOKENS, type RunningController, type RunResult } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
let dir: string;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  dir = tempDir('grid-e2e-apply-');
});

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

function cli(args: string[], input?: string): Promise<RunResult> {
  return runCli(args, { address: controller.address, token: TOKENS.admin, cwd: dir, input });
}

function expectOk(r: RunResult): string {
  expect(r, `exit ${r.code}\nstderr: ${r.stderr}`).toMatchObject({ code: 0, stderr: '' });
  return r.stdout;
}

/** A YAML definition of a host job with one argument. */
function helloYaml(name: string): string {
  return [
    `name: ${name}`,
    'description: says hello',
    'command: [echo, "hello {{NAME}}"]',
    'env_vars:',
    '  args:',
    '    - name: NAME',
    '      type: string',
    '      default: world',
    '      description: who to greet',
    '',
  ].join('\n');
}

describe('apply -f', () => {
  it('describe -o yaml, edit, apply: configured; again: unchanged', async () => {
    const name = uniqueName('apply');
    writeFileSync(join(dir, `${name}.yaml`), helloYaml(name));
    expect(expectOk(await cli(['apply', '-f', `${name}.yaml`]))).toBe(`job ${name} created (version 1)\n`);

    const yaml = expectOk(await cli(['describe', name, '-o', 'yaml']));
    expect(yaml).toMatch(new RegExp(`^name: ${name}\nversion: 1\n`));
    const edited = yaml.replace('description: says hello', 'description: says hello, edited').replace('default: world', 'default: ops');
    expect(edited).not.toBe(yaml);
    writeFileSync(join(dir, 'j.yaml'), edited);

    expect(expectOk(await cli(['apply', '-f', 'j.yaml']))).toBe(`job ${name} configured (version 2)\n`);
    const described = expectOk(await cli(['describe', name]));
    expect(described).toMatch(/^Description:\s+says hello, edited$/m);
    expect(described).toMatch(/^NAME\s+string\s+no\s+ops\s+who to greet$/m);

    // The file still says version 1, but it is what is stored now: nothing to write.
    expect(expectOk(await cli(['apply', '-f', 'j.yaml']))).toBe(`job ${name} unchanged (version 2)\n`);
    expect(parseYaml(expectOk(await cli(['describe', name, '-o', 'yaml'])))).toMatchObject({ version: 2, description: 'says hello, edited' });
  });

  it('two applies from the same version: exactly one wins, the other exits 1 with the conflict', async () => {
    const name = uniqueName('race');
    writeFileSync(join(dir, `${name}.yaml`), helloYaml(name));
    expectOk(await cli(['create', `${name}.yaml`]));
    const yaml = expectOk(await cli(['describe', name, '-o', 'yaml']));
    writeFileSync(join(dir, 'a.yaml'), yaml.replace('says hello', 'edit a'));
    writeFileSync(join(dir, 'b.yaml'), yaml.replace('says hello', 'edit b'));

    const results = await Promise.all([cli(['apply', '-f', 'a.yaml']), cli(['apply', '-f', 'b.yaml'])]);
    const won = results.filter((r) => r.code === 0);
    const lost = results.filter((r) => r.code !== 0);
    expect(won, results.map((r) => r.stdout + r.stderr).join('\n')).toHaveLength(1);
    expect(won[0]!.stdout).toBe(`job ${name} configured (version 2)\n`);
    const line = expectOneLineError(lost[0]!, 1);
    expect(line).toBe(`error: apply: job "${name}" was changed since version 1 (it is now version 2); run grid-cli describe ${name} -o yaml again and reapply your edit`);
    const winner = results.indexOf(won[0]!) === 0 ? 'edit a' : 'edit b';
    expect(JSON.parse(expectOk(await cli(['describe', name, '-o', 'json'])))).toMatchObject({ version: 2, description: winner });
  });

  it('JSON on stdin; without version it replaces whatever is stored', async () => {
    const name = uniqueName('stdin');
    const def = { name, command: ['echo', 'one'] };
    expect(expectOk(await cli(['apply', '-f', '-'], JSON.stringify(def)))).toBe(`job ${name} created (version 1)\n`);
    expect(expectOk(await cli(['apply', '-f', '-'], JSON.stringify({ ...def, command: ['echo', 'two'] })))).toBe(`job ${name} configured (version 2)\n`);
    const json = JSON.parse(expectOk(await cli(['describe', name, '-o', 'json'])));
    expect(json).toMatchObject({ name, version: 2, command: ['echo', 'two'] });
    // What describe -o json prints applies back as it is.
    expect(expectOk(await cli(['apply', '-f', '-'], JSON.stringify(json)))).toBe(`job ${name} unchanged (version 2)\n`);
  });

  it('a version for a job that does not exist is an error', async () => {
    const name = uniqueName('ghost');
    writeFileSync(join(dir, 'ghost.yaml'), `version: 3\n${helloYaml(name)}`);
    const line = expectOneLineError(await cli(['apply', '-f', 'ghost.yaml']), 1);
    expect(line).toBe(`error: apply: job "${name}" does not exist, but ghost.yaml names version 3; remove the version field to create it`);
  });

  it('a YAML file with a bad type: file:line:col, nothing sent', async () => {
    const name = uniqueName('badtype');
    writeFileSync(join(dir, 'bad.yaml'), helloYaml(name).replace('type: string', 'type: number'));
    for (const args of [['apply', '-f', 'bad.yaml'], ['create', 'bad.yaml']]) {
      const line = expectOneLineError(await cli(args), 2);
      expect(line).toBe('error: bad.yaml:7:13: env_vars.args[0].type: "number" is not one of string, int, bool, enum (did you mean "int"?)');
    }
    expectOneLineError(await cli(['describe', name]), 1);
  });

  it('create takes YAML, and create --replace the version describe printed', async () => {
    const name = uniqueName('yamlcreate');
    writeFileSync(join(dir, 'c.yaml'), helloYaml(name));
    expect(expectOk(await cli(['create', 'c.yaml']))).toBe(`created job ${name} (version 1)\n`);
    const yaml = expectOk(await cli(['describe', name, '-o', 'yaml']));
    writeFileSync(join(dir, 'c1.yaml'), yaml.replace('says hello', 'first'));
    writeFileSync(join(dir, 'c2.yaml'), yaml.replace('says hello', 'second'));
    expect(expectOk(await cli(['create', '--replace', 'c1.yaml']))).toBe(`replaced job ${name} (version 2)\n`);
    const line = expectOneLineError(await cli(['create', '--replace', 'c2.yaml']), 1);
    expect(line).toMatch(/was changed concurrently: expected version 1, stored version is 2/);
  });
});

describe('output formats', () => {
  it('-o name lists job names; wide has more columns; an unknown format names the choices', async () => {
    const names = [uniqueName('names'), uniqueName('names')];
    for (const n of names) expectOk(await cli(['apply', '-f', '-'], helloYaml(n)));
    const listed = expectOk(await cli(['list', '-o', 'name'])).trimEnd().split('\n');
    expect(listed).toEqual(expect.arrayContaining(names));
    for (const n of listed) expect(n).toMatch(/^[a-z0-9-]+$/);
    expect(expectOk(await cli(['-o', 'name', 'describe', names[0]!]))).toBe(`${names[0]}\n`);

    expect(expectOk(await cli(['list', '-o', 'wide']))).toMatch(/^NAME\s+RUNNER\s+VERSION\s+UPDATED\s+UPDATED BY\s+TARGET\s+TIMEOUT\s+ARGS\s+RUNS\s+DESCRIPTION$/m);
    const yamlList = parseYaml(expectOk(await cli(['list', '-o', 'yaml']))) as Array<{ name: string; version: number }>;
    expect(yamlList.map((j) => j.name)).toEqual(expect.arrayContaining(names));

    const line = expectOneLineError(await cli(['list', '-o', 'xml']), 2);
    expect(line).toMatch(/'xml' is invalid\. Allowed choices are table, wide, json, yaml, name\./);
    const health = expectOneLineError(await cli(['health', '-o', 'name']), 2);
    expect(health).toBe('error: --output: grid-cli health prints nothing with a name; use one of table, wide, json, yaml');
  });

  it('executions and executors list take -o name and -o yaml too', async () => {
    expect(expectOk(await cli(['executors', 'list', '-o', 'name']))).toBe('');
    expect(parseYaml(expectOk(await cli(['executors', 'list', '-o', 'yaml'])))).toEqual([]);
    expect(expectOk(await cli(['executions', 'list', '-o', 'name']))).toBe('');
  });
});
