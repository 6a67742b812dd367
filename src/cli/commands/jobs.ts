// grid-cli create / describe / list / delete: job definitions.

import { Argument, Option, type Command } from 'commander';
import { completesWith } from '../completion/tree.js';
import { ValidationError } from '../../errors.js';
import { jobJson, jobShown, jobsShown } from '../job-format.js';
import { readJobFile } from '../job-file.js';
import type { Act } from '../main.js';
import { print } from '../render.js';

export function registerJobCommands(program: Command, act: Act): void {
  program
    .command('create')
    .description('create a job definition from a metadata.json or YAML file (or replace it with --replace)')
    .argument('[file]', 'the definition: metadata.json, or YAML (.yaml, .yml); "-" reads stdin')
    .option('--job-path <file>', 'same as FILE (Octavius spelling)')
    .option('--replace', 'replace the definition if it exists (compare-and-swap on its version)')
    .option('--expect-version <n>', "with --replace: only if the stored version is N (default: the file's version field, if any)")
    .addHelpText(
      'after',
      [
        '',
        'The file is checked before it is sent; each problem names its line and column. A `version`',
        'field (as describe -o yaml prints it) is the version --replace expects.',
        '',
        'Examples:',
        '  $ grid-cli create config/examples/hello.json',
        '  $ grid-cli create hello.yaml',
        '  $ grid-cli create --job-path metadata.json --replace',
      ].join('\n'),
    )
    .action(
      act(async (ctx, arg: string | undefined, o: { jobPath?: string; replace?: boolean; expectVersion?: string }) => {
        const path = arg ?? o.jobPath;
        if (!path) throw new ValidationError('create: name the definition file: grid-cli create FILE (metadata.json or YAML)');
        let expectedVersion = o.expectVersion !== undefined ? Number(o.expectVersion) : 0;
        if (!Number.isInteger(expectedVersion) || expectedVersion < 0) {
          throw new ValidationError(`--expect-version: "${o.expectVersion}" must be a whole number`);
        }
        const file = await readJobFile(path, ctx.io, 'create');
        if (o.replace && file.version !== undefined) {
          if (expectedVersion && expectedVersion !== file.version) {
            throw new ValidationError(`--expect-version: ${expectedVersion} differs from version ${file.version} in ${file.source}; give one`);
          }
          expectedVersion = file.version;
        }
        const res = await ctx.client().ctl.createJob({ definitionJson: JSON.stringify(file.raw), replace: !!o.replace, expectedVersion });
        const name = file.definition.name;
        const text = () => `${res.created ? 'created' : 'replaced'} job ${name} (version ${res.job!.version})`;
        print(ctx, { data: jobJson(res.job!), names: [name], text }, 'create');
      }),
    );

  program
    .command('describe')
    .description('show a job definition: runner, command or image, timeout and its arguments')
    .addArgument(completesWith('jobs', new Argument('[name]', 'job name')))
    .addOption(completesWith('jobs', new Option('--job-name <name>', 'same as NAME (Octavius spelling)')))
    .addHelpText(
      'after',
      [
        '',
        'With -o json or -o yaml: the stored definition in metadata.json\'s field names, plus its',
        '`version`; edit it and give it back to grid-cli apply -f.',
        '',
        'Examples:',
        '  $ grid-cli describe hello-world',
        '  $ grid-cli describe hello-world -o yaml > hello.yaml',
        '  $ grid-cli describe --job-name hello-world --output json',
      ].join('\n'),
    )
    .action(
      act(async (ctx, name: string | undefined, o: { jobName?: string }) => {
        const n = name ?? o.jobName;
        if (!n) throw new ValidationError('describe: name the job: grid-cli describe NAME');
        print(ctx, jobShown(await ctx.client().ctl.describeJob(n)), 'describe');
      }),
    );

  program
    .command('list')
    .description('list job definitions')
    .addHelpText('after', '\nExamples:\n  $ grid-cli list\n  $ grid-cli list -o wide\n  $ grid-cli list -o name | xargs -n1 grid-cli describe\n  $ grid-cli list --output yaml')
    .action(
      act(async (ctx) => {
        const { jobs } = await ctx.client().ctl.listJobs();
        print(ctx, jobsShown(jobs), 'list');
      }),
    );

  program
    .command('delete')
    .description('delete a job definition (executions already made are kept)')
    .addArgument(completesWith('jobs', new Argument('<name>', 'job name')))
    .addHelpText('after', '\nExamples:\n  $ grid-cli delete hello-world\n  $ grid-cli list -o name | grep ^tmp- | xargs -n1 grid-cli delete')
    .action(
      act(async (ctx, name: string) => {
        await ctx.client().ctl.deleteJob(name);
        print(ctx, { data: { deleted: name }, names: [name], text: () => `deleted job ${name}` }, 'delete');
      }),
    );
}
