// grid-cli apply -f FILE: create a job definition or bring the stored one in line with the file,
// with a compare-and-swap on the `version` the file carries (as describe -o yaml prints it).

import { isDeepStrictEqual } from 'node:util';
import type { Command } from 'commander';
import type { GridClient } from '../../client/client.js';
import type { JobDefinition } from '../../domain/job.js';
import { validateJobDefinition } from '../../domain/jobdef.js';
import { AlreadyExistsError, ConflictError, FailedPreconditionError, NotFoundError, StaleVersionError, ValidationError } from '../../errors.js';
import type { JobInfo } from '../../gen/grid/v1/types.js';
import { definitionOf, jobJson } from '../job-format.js';
import { readJobFile, type JobFile } from '../job-file.js';
import type { Act } from '../main.js';
import { print } from '../render.js';

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

/** The calls apply makes. */
export type ApplyClient = { ctl: Pick<GridClient['ctl'], 'describeJob' | 'createJob'> };

/**
 * Creates the job, replaces it, or leaves it when the stored definition already equals the
 * file's. With `version` in the file, it replaces only while the stored version is still that
 * one; otherwise a StaleVersionError says what it is now.
 */
export async function applyJob(client: ApplyClient, file: JobFile, racedCreate = false): Promise<{ outcome: ApplyOutcome; job: JobInfo }> {
  const name = file.definition.name;
  const stored = await client.ctl.describeJob(name).catch((err: unknown) => {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  });
  const definitionJson = JSON.stringify(file.raw);
  if (!stored) {
    if (file.version !== undefined) {
      throw new FailedPreconditionError(
        `apply: job "${name}" does not exist, but ${file.source} names version ${file.version}; remove the version field to create it`,
      );
    }
    try {
      const res = await client.ctl.createJob({ definitionJson, replace: false, expectedVersion: 0 });
      return { outcome: 'created', job: res.job! };
    } catch (err) {
      // Another writer created it since it was looked up: without a version, replace theirs (once).
      if (!(err instanceof AlreadyExistsError) || racedCreate) throw err;
      return applyJob(client, file, true);
    }
  }
  if (sameDefinition(file.definition, definitionOf(stored))) return { outcome: 'unchanged', job: stored };
  if (file.version !== undefined && file.version !== stored.version) throw stale(file, stored.version);
  try {
    const res = await client.ctl.createJob({ definitionJson, replace: true, expectedVersion: file.version ?? 0 });
    return { outcome: res.created ? 'created' : 'configured', job: res.job! };
  } catch (err) {
    if (!(err instanceof ConflictError) || file.version === undefined) throw err;
    // Lost the race to another writer: say which version won.
    const now = await client.ctl.describeJob(name).then(
      (j) => j.version,
      () => undefined,
    );
    throw stale(file, now);
  }
}

/** Equal once both are normalised by the same rules: then nothing is written and no version is spent. */
function sameDefinition(fromFile: JobDefinition, stored: JobDefinition): boolean {
  const plain = (d: JobDefinition) => JSON.parse(JSON.stringify(d)) as unknown;
  let normalised: JobDefinition;
  try {
    normalised = validateJobDefinition(plain(stored));
  } catch {
    return false; // stored under older rules: writing the file's is the way forward
  }
  return isDeepStrictEqual(plain(fromFile), plain(normalised));
}

function stale(file: JobFile, current: number | undefined): StaleVersionError {
  const name = file.definition.name;
  const hint =
    current === undefined
      ? `remove the version field from ${file.source} to create it again`
      : `run grid-cli describe ${name} -o ${file.format} again and reapply your edit`;
  return new StaleVersionError('job', name, file.version!, current, { subject: 'apply', hint });
}

export function registerApplyCommand(program: Command, act: Act): void {
  program
    .command('apply')
    .description('create a job definition or update it to match a file (JSON or YAML); compare-and-swap on its version')
    .requiredOption('-f, --filename <file>', 'the definition: metadata.json or YAML; "-" reads stdin')
    .addHelpText(
      'after',
      [
        '',
        'Prints "job NAME created", "configured" (replaced: a new version) or "unchanged" (the stored',
        'definition already equals the file: nothing is written), with the version.',
        '',
        'A file that carries `version: N` (as describe -o yaml prints it) replaces the job only while',
        'its stored version is still N; if someone changed it meanwhile, apply exits 1 and says so:',
        'describe it again and redo the edit. Without `version`, apply creates the job or replaces',
        'whatever is stored.',
        '',
        'Examples:',
        '  $ grid-cli describe hello-world -o yaml > hello.yaml',
        '  $ grid-cli apply -f hello.yaml',
        '  $ grid-cli describe hello-world -o json | jq \'.timeout_seconds = 60\' | grid-cli apply -f -',
      ].join('\n'),
    )
    .action(
      act(async (ctx, o: { filename: string }) => {
        if (o.filename.trim() === '') throw new ValidationError('-f: name the definition file, or "-" for stdin');
        const file = await readJobFile(o.filename, ctx.io, 'apply');
        const { outcome, job } = await applyJob(ctx.client(), file);
        print(ctx, { data: jobJson(job), names: [file.definition.name], text: () => `job ${file.definition.name} ${outcome} (version ${job.version})` }, 'apply');
      }),
    );
}
