// Use-cases for job definitions: create or replace, describe, list, delete. Transport-free:
// the gRPC adapter (and any later front door) calls these with an authenticated principal.

import type { StoredJob } from '../domain/job.js';
import { parseJobDefinition } from '../domain/jobdef.js';
import { checkDefinitionSize, LIMIT_DEFAULTS, type Limits } from '../domain/limits.js';
import { NotFoundError } from '../errors.js';
import type { JobStore } from '../store/store.js';
import { authorize, type Principal } from './auth.js';

export interface CreateJobInput {
  definitionJson: string;
  replace: boolean;
  expectedVersion?: number;
}

export class JobService {
  constructor(
    private readonly store: JobStore,
    private readonly limits: Pick<Limits, 'definition_bytes'> = LIMIT_DEFAULTS,
  ) {}

  async create(p: Principal, input: CreateJobInput): Promise<{ job: StoredJob; created: boolean }> {
    authorize(p, 'jobs:write');
    checkDefinitionSize(input.definitionJson, this.limits);
    const def = parseJobDefinition(input.definitionJson);
    if (!input.replace) return { job: await this.store.createJob(def, p.name), created: true };
    try {
      return { job: await this.store.replaceJob(def, p.name, input.expectedVersion), created: false };
    } catch (err) {
      // `create --replace` of a job that does not exist yet simply creates it.
      if (err instanceof NotFoundError && !input.expectedVersion) {
        return { job: await this.store.createJob(def, p.name), created: true };
      }
      throw err;
    }
  }

  async describe(p: Principal, name: string): Promise<StoredJob> {
    authorize(p, 'jobs:read');
    return this.store.getJob(name);
  }

  async list(p: Principal): Promise<StoredJob[]> {
    authorize(p, 'jobs:read');
    return this.store.listJobs();
  }

  async delete(p: Principal, name: string): Promise<void> {
    authorize(p, 'jobs:write');
    await this.store.deleteJob(name);
  }
}
