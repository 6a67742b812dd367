// NATS credentials for the request intake: a token that may execute gets a NATS user of its own
// that may publish execution requests and hear its own inbox, nothing else (permissions.ts). The
// caller makes the key pair and sends only its public key; the seed never leaves it. Transport-free.

import { subjects } from '../bus/subjects.js';
import { FailedPreconditionError, ValidationError } from '../errors.js';
import { authorize, type Principal } from './auth.js';
import type { NatsAccess } from './nats-access.js';

export const DEFAULT_CREDENTIAL_DAYS = 30;
const MAX_CREDENTIAL_DAYS = 365;

export interface IntakeCredentials {
  jwt: string;
  servers: string[];
  /** PEM of the CA that signed the NATS servers' certificates; "" = the system's CAs. */
  caPem: string;
  inboxPrefix: string;
  subject: string;
  expiresAtMs: number;
}

export class NatsCredentialService {
  constructor(
    private readonly d: {
      access: Pick<NatsAccess, 'submitterUser'>;
      /** What clients connect to (nats.advertise, else nats.servers). */
      servers: string[];
      caPem: string;
      now?: () => number;
    },
  ) {}

  async issue(p: Principal, userPublicKey: string, days: number): Promise<IntakeCredentials> {
    // Submitting over NATS is executing: the same permission as Execute at any other door.
    authorize(p, 'executions:write');
    const d = days || DEFAULT_CREDENTIAL_DAYS;
    if (!Number.isInteger(d) || d < 1 || d > MAX_CREDENTIAL_DAYS) {
      throw new ValidationError([{ path: 'days', message: `${days} must be a whole number of days from 1 to ${MAX_CREDENTIAL_DAYS}` }]);
    }
    const expiresAtMs = (this.d.now?.() ?? Date.now()) + d * 86_400_000;
    const user = await this.d.access.submitterUser(p.name, userPublicKey, expiresAtMs);
    if (!user) {
      throw new FailedPreconditionError(
        'this controller\'s NATS does not authenticate (nats.auth: "none"), so there are no credentials to issue: connect to it without --nats-creds',
      );
    }
    return { jwt: user.jwt, servers: this.d.servers, caPem: this.d.caPem, inboxPrefix: user.inboxPrefix, subject: subjects.submitExecute, expiresAtMs };
  }
}
