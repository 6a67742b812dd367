// Who is calling, and may they do this. Tokens are compared in constant time; the roles are
// admin (definitions, executors, files), operator (execute, cancel, logs, read), viewer (read),
// and metrics (a Prometheus scraper's: /metrics and nothing else).

import { createHash, timingSafeEqual } from 'node:crypto';
import { PermissionDeniedError, UnauthenticatedError } from '../errors.js';

export type Role = 'admin' | 'operator' | 'viewer' | 'metrics';

export interface Principal {
  name: string;
  role: Role;
  groups: string[];
}

export interface TokenSpec {
  name: string;
  token: string;
  role: Role;
  groups: string[];
}

export type Action =
  | 'jobs:read'
  | 'jobs:write'
  | 'executions:read'
  | 'executions:write'
  | 'logs:read'
  | 'executors:read'
  | 'executors:write'
  | 'files:read'
  | 'files:write'
  | 'metrics:read';

const allowed: Record<Role, ReadonlySet<Action>> = {
  metrics: new Set(['metrics:read']),
  viewer: new Set(['jobs:read', 'executions:read', 'executors:read', 'metrics:read']),
  operator: new Set(['jobs:read', 'executions:read', 'executors:read', 'executions:write', 'logs:read', 'files:read', 'metrics:read']),
  admin: new Set([
    'jobs:read', 'jobs:write', 'executions:read', 'executions:write', 'logs:read',
    'executors:read', 'executors:write', 'files:read', 'files:write', 'metrics:read',
  ]),
};

const ANONYMOUS_ADMIN: Principal = { name: 'anonymous', role: 'admin', groups: [] };

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time equality of two secrets (hashing first makes the lengths equal). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/**
 * Whether `secret` hashes to `hashHex` (a kept sha256 hex digest), compared in constant time:
 * one hash, where secretEquals over the hex strings would take three.
 */
export function secretMatchesHash(secret: string, hashHex: string): boolean {
  const got = Buffer.from(sha256(secret).toString('hex'));
  const kept = Buffer.from(hashHex);
  return got.length === kept.length && timingSafeEqual(got, kept);
}

/**
 * The token of an `Authorization: Bearer <token>` header (or gRPC `authorization` metadata),
 * the one way every front door takes a caller's token; undefined when there is none.
 */
export function bearerToken(authorization: unknown): string | undefined {
  if (typeof authorization !== 'string') return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  return m ? m[1] : undefined;
}

export class Authenticator {
  private readonly tokens: Array<{ hash: Buffer; principal: Principal }>;

  /** `mode: 'none'` lets every caller in as an admin; it must be asked for explicitly. */
  constructor(private readonly mode: 'tokens' | 'none', tokens: TokenSpec[]) {
    this.tokens = tokens.map((t) => ({ hash: sha256(t.token), principal: { name: t.name, role: t.role, groups: t.groups } }));
  }

  authenticate(token: string | undefined): Principal {
    if (this.mode === 'none') return ANONYMOUS_ADMIN;
    if (!token) throw new UnauthenticatedError('no token given: set one with "grid-cli config set --token T" or GRID_TOKEN');
    const h = sha256(token);
    let found: Principal | undefined;
    // Compare against every token, so the time taken does not tell which one matched.
    for (const t of this.tokens) if (timingSafeEqual(h, t.hash)) found = t.principal;
    if (!found) throw new UnauthenticatedError('the token was not accepted: check GRID_TOKEN or the client config');
    return found;
  }
}

export function authorize(p: Principal, action: Action): void {
  if (!allowed[p.role].has(action)) {
    throw new PermissionDeniedError(`${p.name} (role ${p.role}) may not ${describeAction(action)}; that needs ${neededRole(action)}`);
  }
}

/**
 * /metrics: role metrics, viewer or higher, and no group scope — the metrics name the jobs of
 * every group, which a token scoped to some groups may not see.
 */
export function authorizeMetrics(p: Principal): void {
  authorize(p, 'metrics:read');
  if (p.groups.length) {
    throw new PermissionDeniedError(
      `${p.name}'s token is scoped to groups ${p.groups.join(', ')}: the metrics cover the jobs of every group; scrape with a token without groups (role metrics)`,
    );
  }
}

/** authorized_groups on a definition: only members (or admins) may execute it. */
export function authorizeJobGroups(p: Principal, job: string, groups: string[]): void {
  if (groups.length === 0 || p.role === 'admin') return;
  if (p.groups.some((g) => groups.includes(g))) return;
  throw new PermissionDeniedError(
    `${p.name} may not execute job "${job}": it is restricted to groups ${groups.join(', ')} and the token's groups are ${p.groups.join(', ') || 'none'}`,
  );
}

function neededRole(action: Action): string {
  if (allowed.metrics.has(action)) return 'role metrics, viewer or higher';
  if (allowed.viewer.has(action)) return 'role viewer or higher';
  if (allowed.operator.has(action)) return 'role operator or admin';
  return 'role admin';
}

function describeAction(action: Action): string {
  const [what, how] = action.split(':');
  return `${how === 'write' ? 'change' : 'read'} ${what}`;
}
