// How grid-cli shows job definitions. JSON and YAML use metadata.json's field names: the stored
// definition plus its `version`, so that what describe prints can be edited and applied back.

import type { JobDefinition as PbJobDefinition, JobInfo } from '../gen/grid/v1/types.js';
import type { JobDefinition } from '../domain/job.js';
import { table, time } from './output.js';
import type { Shown } from './render.js';

/** A job as JSON and YAML show it: `name`, `version`, then the definition's other fields. */
export type JobJson = JobDefinition & { version: number };

/** The stored definition: the controller's definition_json, else (an older controller) rebuilt from the message. */
export function definitionOf(info: JobInfo): JobDefinition {
  if (info.definitionJson) return JSON.parse(info.definitionJson) as JobDefinition;
  return fromPb(info.definition!);
}

export function jobJson(info: JobInfo): JobJson {
  const { name, ...rest } = definitionOf(info);
  return { name, version: info.version, ...rest };
}

/** The fields the JobDefinition message carries, in metadata.json's names; empty ones left out. */
function fromPb(d: PbJobDefinition): JobDefinition {
  const def: JobDefinition = {
    name: d.name,
    description: d.description,
    authorized_groups: d.authorizedGroups,
    env_vars: {
      secrets: d.envVars?.secrets.map((s) => ({ name: s.name, description: s.description, required: s.required })) ?? [],
      args: (d.envVars?.args ?? []).map((a) => ({
        name: a.name,
        description: a.description,
        required: a.required,
        type: a.type as JobDefinition['env_vars']['args'][number]['type'],
        ...(a.values.length ? { values: a.values } : {}),
        ...(a.default !== undefined ? { default: a.default } : {}),
        ...(a.pattern ? { pattern: a.pattern } : {}),
      })),
    },
    runner: d.runner as JobDefinition['runner'],
    files: d.files.map((f) => ({ name: f.name, path: f.path, template: f.template, ...(f.mode ? { mode: f.mode } : {}) })),
  };
  const optional: Partial<JobDefinition> = {
    image_name: d.imageName || undefined,
    author: d.author || undefined,
    contributors: d.contributors.length ? d.contributors : undefined,
    organization: d.organization || undefined,
    command: d.command.length ? d.command : undefined,
    shell: d.shell || undefined,
    timeout_seconds: d.timeoutSeconds || undefined,
    retries: d.retries ? { max_attempts: d.retries.maxAttempts, backoff_seconds: d.retries.backoffSeconds } : undefined,
    target: d.target || undefined,
    serialize: d.serialize || undefined,
    allow_env: d.allowEnv.length ? d.allowEnv : undefined,
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) Object.assign(def, { [k]: v });
  return def;
}

/** `grid-cli list` in every format. */
export function jobsShown(jobs: JobInfo[]): Shown {
  const rows = jobs.map((j) => ({ info: j, def: definitionOf(j) }));
  const empty = 'no jobs yet: grid-cli create FILE adds one';
  return {
    data: jobs.map(jobJson),
    names: rows.map((r) => r.def.name),
    text: () =>
      rows.length === 0
        ? empty
        : table(
            ['NAME', 'RUNNER', 'VERSION', 'UPDATED', 'DESCRIPTION'],
            rows.map(({ info, def }) => [def.name, def.runner, info.version, time(info.updatedAtMs), def.description]),
          ),
    wide: () =>
      rows.length === 0
        ? empty
        : table(
            ['NAME', 'RUNNER', 'VERSION', 'UPDATED', 'UPDATED BY', 'TARGET', 'TIMEOUT', 'ARGS', 'RUNS', 'DESCRIPTION'],
            rows.map(({ info, def }) => [
              def.name,
              def.runner,
              info.version,
              time(info.updatedAtMs),
              info.updatedBy,
              def.target,
              def.timeout_seconds ? `${def.timeout_seconds}s` : undefined,
              def.env_vars.args.map((a) => a.name).join(',') || undefined,
              runs(def),
              def.description,
            ]),
          ),
  };
}

/** `grid-cli describe` in every format. */
export function jobShown(info: JobInfo): Shown {
  const def = definitionOf(info);
  return { data: jobJson(info), names: [def.name], text: () => describeText(info, def) };
}

/** What a task runs: the image, the command or "shell". */
function runs(d: JobDefinition): string {
  if (d.image_name) return d.image_name;
  if (d.command?.length) return d.command.map(quoteArg).join(' ');
  return d.shell ? 'shell' : '';
}

export function describeText(info: JobInfo, d: JobDefinition): string {
  const lines: Array<[string, string]> = [
    ['Name', d.name],
    ['Description', d.description],
    ['Version', `${info.version} (updated ${time(info.updatedAtMs)} by ${info.updatedBy})`],
    ['Runner', d.runner],
  ];
  if (d.image_name) lines.push(['Image', d.image_name]);
  if (d.command?.length) lines.push(['Command', d.command.map(quoteArg).join(' ')]);
  if (d.shell) lines.push(['Shell', d.shell]);
  lines.push(['Timeout', d.timeout_seconds ? `${d.timeout_seconds}s` : 'none']);
  if (d.retries) lines.push(['Retries', `${d.retries.max_attempts} attempts, ${d.retries.backoff_seconds}s backoff`]);
  if (d.on_lost) lines.push(['On lost', d.on_lost]);
  if (d.target) lines.push(['Target', d.target]);
  if (d.serialize) lines.push(['Serialize', d.serialize]);
  if (d.author) lines.push(['Author', d.author]);
  if (d.contributors?.length) lines.push(['Contributors', d.contributors.join(', ')]);
  if (d.organization) lines.push(['Organization', d.organization]);
  if (d.authorized_groups.length) lines.push(['Groups', d.authorized_groups.join(', ')]);
  if (d.allow_env?.length) lines.push(['Allowed env', d.allow_env.join(', ')]);
  if (d.files.length) lines.push(['Files', d.files.map((f) => `${f.name} → ${f.path}${f.template ? ' (template)' : ''}`).join(', ')]);
  const pairs = (m: Record<string, string> | undefined) => Object.entries(m ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
  if (d.resources && (pairs(d.resources.requests) || pairs(d.resources.limits))) {
    lines.push(['Resources', [`requests ${pairs(d.resources.requests) || '-'}`, `limits ${pairs(d.resources.limits) || '-'}`].join('; ')]);
  }
  if (d.node_selector && pairs(d.node_selector)) lines.push(['Node selector', pairs(d.node_selector)]);
  if (d.tolerations?.length) {
    const shown = d.tolerations.map((t) => `${t.key ?? '*'}${t.operator === 'Equal' ? `=${t.value ?? ''}` : ' exists'}${t.effect ? `:${t.effect}` : ''}`);
    lines.push(['Tolerations', shown.join(', ')]);
  }
  if (d.security_context) lines.push(['Security', JSON.stringify(d.security_context)]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  let out = lines.map(([k, v]) => `${(k + ':').padEnd(width)} ${v}`).join('\n');
  const args = d.env_vars.args;
  const secrets = d.env_vars.secrets;
  out += '\n\nArguments:\n';
  out += args.length
    ? table(
        ['NAME', 'TYPE', 'REQUIRED', 'DEFAULT', 'DESCRIPTION'],
        args.map((a) => [a.name, a.type === 'enum' ? `enum(${(a.values ?? []).join('|')})` : a.type, a.required ? 'yes' : 'no', a.default, a.description]),
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
