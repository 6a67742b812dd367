// grid-cli create / describe / list / delete: job definitions.

import { readFile } from 'node:fs/promises';
import { Argument, Option, type Command } from 'commander';
import { completesWith } from '../completion/tree.js';
import { ValidationError } from '../../errors.js';
import type { JobInfo } from '../../gen/grid/v1/types.js';
import type { Act } from '../main.js';
import { json, table, time } from '../output.js';

export function registerJobCommands(program: Command, act: Act): void {
  program
    .command('create')
    .description('create a job definition from a metadata.json file (or replace it with --replace)')
    .argument('[file]', 'path of the metadata.json')
    .option('--job-path <file>', 'same as FILE (Octavius spelling)')
    .option('--replace', 'replace the definition if it exists (compare-and-swap on its version)')
    .option('--expect-version <n>', 'with --replace: only if the stored version is N')
    .addHelpText('after', '\nExamples:\n  $ grid-cli create config/examples/hello.json\n  $ grid-cli create --job-path metadata.json --replace')
    .action(
      act(async (ctx, file: string | undefined, o: { jobPath?: string; replace?: boolean; expectVersion?: string }) => {
        const path = file ?? o.jobPath;
        if (!path) throw new ValidationError('create: name the metadata.json file: grid-cli create FILE');
        let text: string;
        try {
          text = await readFile(path, 'utf8');
        } catch (err) {
          throw new ValidationError(`create: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        const expectedVersion = o.expectVersion ? Number(o.expectVersion) : 0;
        if (!Number.isInteger(expectedVersion) || expectedVersion < 0) {
          throw new ValidationError(`--expect-version: "${o.expectVersion}" must be a whole number`);
        }
        const res = await ctx.client().ctl.createJob({ definitionJson: text, replace: !!o.replace, expectedVersion });
        if (ctx.output === 'json') return ctx.io.out(json(res.job));
        const name = res.job!.definition!.name;
        ctx.io.out(`${res.created ? 'created' : 'replaced'} job ${name} (version ${res.job!.version})`);
      }),
    );

  program
    .command('describe')
    .description('show a job definition: runner, command or image, timeout and its arguments')
    .addArgument(completesWith('jobs', new Argument('[name]', 'job name')))
    .addOption(completesWith('jobs', new Option('--job-name <name>', 'same as NAME (Octavius spelling)')))
    .addHelpText('after', '\nExamples:\n  $ grid-cli describe hello-world\n  $ grid-cli describe --job-name hello-world --output json')
    .action(
      act(async (ctx, name: string | undefined, o: { jobName?: string }) => {
        const n = name ?? o.jobName;
        if (!n) throw new ValidationError('describe: name the job: grid-cli describe NAME');
        const job = await ctx.client().ctl.describeJob(n);
        ctx.io.out(ctx.output === 'json' ? json(job) : describeText(job));
      }),
    );

  program
    .command('list')
    .description('list job definitions')
    .addHelpText('after', '\nExamples:\n  $ grid-cli list\n  $ grid-cli list --output json')
    .action(
      act(async (ctx) => {
        const { jobs } = await ctx.client().ctl.listJobs();
        if (ctx.output === 'json') return ctx.io.out(json(jobs));
        if (jobs.length === 0) return ctx.io.out('no jobs yet: grid-cli create FILE adds one');
        ctx.io.out(
          table(
            ['NAME', 'RUNNER', 'VERSION', 'UPDATED', 'DESCRIPTION'],
            jobs.map((j) => [j.definition!.name, j.definition!.runner, j.version, time(j.updatedAtMs), j.definition!.description]),
          ),
        );
      }),
    );

  program
    .command('delete')
    .description('delete a job definition (executions already made are kept)')
    .addArgument(completesWith('jobs', new Argument('<name>', 'job name')))
    .addHelpText('after', '\nExample:\n  $ grid-cli delete hello-world')
    .action(
      act(async (ctx, name: string) => {
        await ctx.client().ctl.deleteJob(name);
        if (ctx.output === 'json') return ctx.io.out(json({ deleted: name }));
        ctx.io.out(`deleted job ${name}`);
      }),
    );
}

function describeText(job: JobInfo): string {
  const d = job.definition!;
  const lines: Array<[string, string]> = [
    ['Name', d.name],
    ['Description', d.description],
    ['Version', `${job.version} (updated ${time(job.updatedAtMs)} by ${job.updatedBy})`],
    ['Runner', d.runner],
  ];
  if (d.imageName) lines.push(['Image', d.imageName]);
  if (d.command.length) lines.push(['Command', d.command.map(quoteArg).join(' ')]);
  if (d.shell) lines.push(['Shell', d.shell]);
  lines.push(['Timeout', d.timeoutSeconds ? `${d.timeoutSeconds}s` : 'none']);
  if (d.retries) lines.push(['Retries', `${d.retries.maxAttempts} attempts, ${d.retries.backoffSeconds}s backoff`]);
  if (d.target) lines.push(['Target', d.target]);
  if (d.serialize) lines.push(['Serialize', d.serialize]);
  if (d.author) lines.push(['Author', d.author]);
  if (d.contributors.length) lines.push(['Contributors', d.contributors.join(', ')]);
  if (d.organization) lines.push(['Organization', d.organization]);
  if (d.authorizedGroups.length) lines.push(['Groups', d.authorizedGroups.join(', ')]);
  if (d.allowEnv.length) lines.push(['Allowed env', d.allowEnv.join(', ')]);
  if (d.files.length) lines.push(['Files', d.files.map((f) => `${f.name} → ${f.path}${f.template ? ' (template)' : ''}`).join(', ')]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  let out = lines.map(([k, v]) => `${(k + ':').padEnd(width)} ${v}`).join('\n');
  const args = d.envVars?.args ?? [];
  const secrets = d.envVars?.secrets ?? [];
  out += '\n\nArguments:\n';
  out += args.length
    ? table(
        ['NAME', 'TYPE', 'REQUIRED', 'DEFAULT', 'DESCRIPTION'],
        args.map((a) => [a.name, a.type === 'enum' ? `enum(${a.values.join('|')})` : a.type, a.required ? 'yes' : 'no', a.default, a.description]),
      )
    : '  none';
  if (secrets.length) {
    out += '\n\nSecrets:\n' + table(['NAME', 'REQUIRED', 'DESCRIPTION'], secrets.map((s) => [s.name, s.required ? 'yes' : 'no', s.description]));
  }
  return out;
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./{}-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}
