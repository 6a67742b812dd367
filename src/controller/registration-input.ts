// What an executor sends at Register and gets back, and the checks of what it says about itself.

import { RUNNERS, type RunnerName } from '../domain/job.js';
import { groupCountProblem, type Limits } from '../domain/limits.js';
import { ValidationError, type Problem } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import type { Principal } from './auth.js';
import type { ExecutorNatsUser } from './nats-access.js';

export interface RegisterInput {
  registrationToken: string;
  name: string;
  groups: string[];
  labels: Record<string, string>;
  runners: string[];
  concurrency: number;
  pingIntervalSeconds: number;
  version: string;
  replace: boolean;
  executorId?: string;
  executorSecret?: string;
  /** Public key of the NATS user the executor made for itself. */
  natsUserKey?: string;
  /** --replace: the secret of the executor whose name is taken over, from its state file. */
  replaceSecret?: string;
  /** --replace: who else vouches for it (a bearer token sent with the call), if anyone. */
  replaceBy?: Principal;
  /** The public key of the executor's TLS client key (PEM). */
  tlsPublicKey?: string;
}

export interface RegisterOutput {
  executorId: string;
  /** The secret the executor must present from now on (the same one on re-registration). */
  executorSecret: string;
  created: boolean;
  natsServers: string[];
  jobSubject: string;
  jobConsumer: string;
  poolConsumers: string[];
  pingDeadlineSeconds: number;
  /** Its NATS user JWT and reply prefix; absent on a NATS without authentication. */
  natsUser?: ExecutorNatsUser;
  /** Its TLS client certificate (PEM); absent on a controller without TLS. */
  tlsCertificate?: string;
  /** The CA of the NATS servers (PEM), when known. */
  natsCaPem?: string;
}

const LABEL = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** Checks what an executor says about itself; one ValidationError lists every problem. */
export function validateRegistration(input: RegisterInput, limits: Pick<Limits, 'groups_per_executor'>) {
  const problems: Problem[] = [];
  const name = (input.name ?? '').trim();
  if (!NODE_NAME.test(name)) {
    problems.push({ path: 'name', message: `"${name}" must be lowercase letters, digits, "-" and ".", starting and ending with a letter or digit` });
  }
  const groups = [...new Set(input.groups ?? [])];
  const tooMany = groupCountProblem(groups, limits);
  // Too many is the one problem worth a line; each of thousands of names would not be.
  if (tooMany) problems.push(tooMany);
  else groups.forEach((g, i) => {
    if (!LABEL.test(g)) problems.push({ path: `groups[${i}]`, message: `"${g}" must be a DNS label: lowercase letters, digits and "-", starting with a letter` });
  });
  const runners = [...new Set(input.runners?.length ? input.runners : ['host'])];
  runners.forEach((r, i) => {
    if (!RUNNERS.includes(r as RunnerName)) {
      problems.push({ path: `runners[${i}]`, message: `"${r}" is not one of ${RUNNERS.join(', ')}${didYouMean(r, RUNNERS)}` });
    }
  });
  const concurrency = input.concurrency || 1;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
    problems.push({ path: 'concurrency', message: `${input.concurrency} must be a whole number from 1 to 10000` });
  }
  if (problems.length) throw new ValidationError(problems, { subject: 'executor registration' });
  return {
    name,
    groups,
    labels: input.labels ?? {},
    runners: runners as RunnerName[],
    concurrency,
    version: input.version ?? '',
    ping_interval_seconds: input.pingIntervalSeconds || 10,
  };
}

