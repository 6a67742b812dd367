// apply's decisions (created, configured, unchanged, a stale version, a lost race) against the
// controller's own job use-cases on the in-memory store, through the conversion the gRPC door uses.

import { describe, expect, it } from 'vitest';
import { applyJob, type ApplyClient } from '../../src/cli/commands/apply.js';
import { parseJobFile } from '../../src/cli/job-file.js';
import type { Principal } from '../../src/controller/auth.js';
import { jobInfoToPb } from '../../src/controller/doors/grpc/convert.js';
import { JobService } from '../../src/controller/jobs.js';
import { FailedPreconditionError, StaleVersionError } from '../../src/errors.js';
import { MemoryJobStore } from '../../src/store/memory.js';

const admin: Principal = { name: 'admin', role: 'admin', groups: [] };

/** A client whose calls go to JobService; `beforeWrite` runs once, just before the first write (another writer). */
function controller(beforeWrite?: (jobs: JobService) => Promise<unknown>) {
  const jobs = new JobService(new MemoryJobStore());
  let pending = beforeWrite;
  const writes: string[] = [];
  const client: ApplyClient = {
    ctl: {
      describeJob: async (name) => jobInfoToPb(await jobs.describe(admin, name)),
      createJob: async (req) => {
        const other = pending;
        pending = undefined;
        if (other) await other(jobs);
        writes.push(req.replace ? `replace expecting ${req.expectedVersion}` : 'create');
        const res = await jobs.create(admin, { definitionJson: req.definitionJson, replace: req.replace, expectedVersion: req.expectedVersion });
        return { job: jobInfoToPb(res.job), created: res.created };
      },
    },
  };
  return { jobs, client, writes };
}

const yaml = (description: string, version?: number) =>
  `${version !== undefined ? `version: ${version}\n` : ''}name: hello\ndescription: ${description}\ncommand: [echo, hi]\n`;
const file = (description: string, version?: number) => parseJobFile(yaml(description, version), 'hello.yaml');
const json = (description: string) => JSON.stringify({ name: 'hello', description, command: ['echo', 'hi'] });

describe('apply', () => {
  it('created, then unchanged (nothing written), then configured', async () => {
    const c = controller();
    expect(await applyJob(c.client, file('one'))).toMatchObject({ outcome: 'created', job: { version: 1 } });
    expect(await applyJob(c.client, file('one', 1))).toMatchObject({ outcome: 'unchanged', job: { version: 1 } });
    expect(await applyJob(c.client, file('two', 1))).toMatchObject({ outcome: 'configured', job: { version: 2 } });
    expect(c.writes).toEqual(['create', 'replace expecting 1']);
  });

  it('a version that is no longer the stored one: the conflict, nothing written', async () => {
    const c = controller();
    await applyJob(c.client, file('one'));
    await applyJob(c.client, file('two'));
    const err = await applyJob(c.client, file('three', 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleVersionError);
    expect((err as Error).message).toBe(
      'apply: job "hello" was changed since version 1 (it is now version 2); run grid-cli describe hello -o yaml again and reapply your edit',
    );
    expect(c.writes).toEqual(['create', 'replace expecting 0']);
  });

  it('a race lost at the controller (its compare-and-swap) says which version won', async () => {
    const c = controller((jobs) => jobs.create(admin, { definitionJson: json('theirs'), replace: true, expectedVersion: 1 }));
    await c.jobs.create(admin, { definitionJson: json('one'), replace: false });
    const err = await applyJob(c.client, file('mine', 1)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^apply: job "hello" was changed since version 1 \(it is now version 2\);/);
    expect((await c.jobs.describe(admin, 'hello')).definition.description).toBe('theirs');
  });

  it('without a version, a job created meanwhile by someone else is replaced', async () => {
    const c = controller((jobs) => jobs.create(admin, { definitionJson: json('theirs'), replace: false }));
    expect(await applyJob(c.client, file('mine'))).toMatchObject({ outcome: 'configured', job: { version: 2 } });
    expect((await c.jobs.describe(admin, 'hello')).definition.description).toBe('mine');
  });

  it('a version for a job that does not exist is an error', async () => {
    const err = await applyJob(controller().client, file('one', 3)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toBe('apply: job "hello" does not exist, but hello.yaml names version 3; remove the version field to create it');
  });
});
