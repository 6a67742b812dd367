// An executor as the registry knows it, and the rules for moving between its states.

import type { RunnerName } from './job.js';

export type ExecutorState = 'ACTIVE' | 'EXPIRED' | 'DRAINING' | 'STOPPED';

export interface ExecutorRecord {
  id: string;
  name: string;
  groups: string[];
  labels: Record<string, string>;
  runners: RunnerName[];
  concurrency: number;
  version: string;
  state: ExecutorState;
  registered_at_ms: number;
  /** Written on state changes only; live heartbeat times are kept in memory (see registry). */
  last_seen_at_ms: number;
  state_changed_at_ms: number;
  ping_interval_seconds: number;
  /** sha256 of the executor's secret, hex; the secret itself is never stored. */
  secret_hash: string;
  /** The etcd lease that keeps alive/<id>, hex; "" when none is held. */
  lease_id: string;
  /** Public key of its NATS user (revoked when it is removed); absent on a NATS without auth. */
  nats_user_key?: string;
  /** Its current TLS client certificate; absent on a controller without TLS. */
  tls_cert?: ExecutorCertRef;
  /** The one before a renewal, accepted until it expires so calls in flight finish. */
  tls_prev_cert?: ExecutorCertRef;
}

export interface ExecutorCertRef {
  /** Lower-case hex serial number. */
  serial: string;
  not_after_ms: number;
}

/** The public view: everything but the secret hash and lease. */
export type ExecutorView = Omit<ExecutorRecord, 'secret_hash' | 'lease_id'> & { running_tasks: number; load: number };

/** Every executor is implicitly in the group "all". */
export function groupsOf(e: Pick<ExecutorRecord, 'groups'>): string[] {
  return e.groups.includes('all') ? e.groups : ['all', ...e.groups];
}

export function isLive(state: ExecutorState): boolean {
  return state === 'ACTIVE' || state === 'DRAINING';
}
