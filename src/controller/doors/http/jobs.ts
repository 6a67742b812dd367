// /v1/jobs: job definitions. POST and PUT take Octavius's metadata.json unchanged as the body,
// handed to the use-case as the text that arrived (so its size limit counts what was sent).

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { StoredJob } from '../../../domain/job.js';
import { ValidationError } from '../../../errors.js';
import type { AuditSpec } from '../../audit.js';
import type { JobService } from '../../jobs.js';
import { asCaller, audited, type HttpContext } from './context.js';
import { errorResponses, jobSchema, nameParams } from './schemas.js';

/** The body as it arrived (set by the door's JSON parser). */
export function rawBody(req: FastifyRequest): string {
  return (req as FastifyRequest & { rawBody?: string }).rawBody ?? JSON.stringify(req.body ?? null);
}

const definitionBody = {
  type: 'object',
  description: "Octavius's metadata.json (name, description, image_name, author, contributors, organization, authorized_groups, env_vars) plus GRID's fields (runner, command, shell, timeout_seconds, retries, target, serialize, files, on_lost, allow_env, and for the kubernetes runner resources, node_selector, tolerations, security_context); checked by the controller, each problem naming its field",
  additionalProperties: true,
} as const;

interface JobWrite {
  name?: string;
  replace: boolean;
}

const writeSpec: AuditSpec<JobWrite, { job: StoredJob }> = {
  action: (r) => (r.replace ? 'job.replace' : 'job.create'),
  target: (r, res) => res?.job.definition.name ?? r.name,
};

function nameIn(body: unknown): string | undefined {
  const name = (body as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
}

export function jobRoutes(app: FastifyInstance, ctx: HttpContext, jobs: JobService): void {
  app.get('/v1/jobs', {
    schema: {
      summary: 'list job definitions',
      tags: ['jobs'],
      response: { 200: { type: 'object', properties: { jobs: { type: 'array', items: jobSchema } } }, ...errorResponses(403) },
    },
  }, async (req) => ({ jobs: await asCaller(ctx, req, (who) => jobs.list(who)) }));

  app.post('/v1/jobs', {
    schema: {
      summary: 'create a job definition from its metadata.json (409 if one of that name exists)',
      tags: ['jobs'],
      body: definitionBody,
      response: { 201: jobSchema, ...errorResponses(400, 403, 409) },
    },
  }, async (req, reply) => {
    const { job } = await audited(ctx, req, writeSpec, { name: nameIn(req.body), replace: false }, (who) =>
      jobs.create(who, { definitionJson: rawBody(req), replace: false }),
    );
    return reply.code(201).send(job);
  });

  app.get<{ Params: { name: string } }>('/v1/jobs/:name', {
    schema: { summary: 'a job definition', tags: ['jobs'], params: nameParams, response: { 200: jobSchema, ...errorResponses(403, 404) } },
  }, async (req) => asCaller(ctx, req, (who) => jobs.describe(who, req.params.name)));

  app.put<{ Params: { name: string } }>('/v1/jobs/:name', {
    schema: {
      summary: 'replace a job definition with this metadata.json (or create it); its name must be the one in the path',
      tags: ['jobs'],
      params: nameParams,
      body: definitionBody,
      response: { 200: jobSchema, 201: jobSchema, ...errorResponses(400, 403, 409) },
    },
  }, async (req, reply) => {
    const { job, created } = await audited(ctx, req, writeSpec, { name: req.params.name, replace: true }, async (who) => {
      const inBody = nameIn(req.body);
      if (inBody !== req.params.name) {
        throw new ValidationError([{ path: 'name', message: `${JSON.stringify(inBody ?? null)} is not the job in the path, ${JSON.stringify(req.params.name)}` }]);
      }
      return jobs.create(who, { definitionJson: rawBody(req), replace: true });
    });
    return reply.code(created ? 201 : 200).send(job);
  });

  app.delete<{ Params: { name: string } }>('/v1/jobs/:name', {
    schema: {
      summary: 'delete a job definition',
      tags: ['jobs'],
      params: nameParams,
      response: { 200: { type: 'object', properties: { deleted: { type: 'string' } } }, ...errorResponses(403, 404, 409) },
    },
  }, async (req) => {
    const name = req.params.name;
    await audited(ctx, req, { action: 'job.delete', target: () => name }, {}, (who) => jobs.delete(who, name));
    return { deleted: name };
  });
}
