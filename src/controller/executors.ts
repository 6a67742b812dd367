// The executor registry's use-cases: register, heartbeat, deregister, list, describe, remove.
// Liveness lives in etcd leases (alive/<id>), kept by heartbeats (executor-leases.ts); see
// expiry.ts for what happens when one lapses. What Register takes and checks: registration-input.ts.

import { randomBytes } from 'node:crypto';
import type { Bus } from '../bus/bus.js';
import { subjects } from '../bus/subjects.js';
import { groupsOf, type ExecutorRecord, type ExecutorState, type ExecutorView } from '../domain/executor.js';
import { LIMIT_DEFAULTS, type Limits } from '../domain/limits.js';
import { AlreadyExistsError, PermissionDeniedError, UnauthenticatedError, UnavailableError, ValidationError } from '../errors.js';
import type { RegistrationToken } from '../config/controller.js';
import type { ExecutorStore, LeaseStore } from '../store/store.js';
import { newId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import { authorize, secretEquals, secretMatchesHash, sha256, type Principal } from './auth.js';
import type { NatsAccess } from './nats-access.js';
import type { ExecutorCertificates } from './executor-certs.js';
import type { PeerCert } from '../tls/ca.js';
import { Admission } from '../util/admission.js';
import { ExecutorLeases } from './executor-leases.js';
import { validateRegistration, type RegisterInput, type RegisterOutput } from './registration-input.js';
import { HeartbeatNotRecordedError, type ExecutorHeartbeat, type HeartbeatInput, type HeartbeatStatus, type HeartbeatStream } from './heartbeats.js';

export type { RegisterInput, RegisterOutput } from './registration-input.js';

/** What an open heartbeat stream was authenticated with; a change ends the stream. */
function credentialsOf(rec: ExecutorRecord): string {
  return `${rec.secret_hash}/${rec.tls_cert?.serial ?? ''}/${rec.nats_user_key ?? ''}`;
}

interface LiveInfo {
  lastSeenMs: number;
  runningTasks: number;
  load: number;
}

export interface RegistryOptions {
  registrationTokens: RegistrationToken[];
  pingDeadlineSeconds: number;
  natsAdvertise: string[];
  now?: () => number;
  /** Issues and checks executors' client certificates; absent = gRPC without TLS. */
  certificates?: ExecutorCertificates;
  /** PEM of the CA executors verify NATS with, handed over at Register. */
  natsCaPem?: string;
  /** Groups per executor (default LIMIT_DEFAULTS). */
  limits?: Pick<Limits, 'groups_per_executor'>;
  /** Told of each heartbeat: accepted, refused (an unknown executor, a wrong secret), or failed (etcd). */
  onHeartbeat?: (result: 'accepted' | 'refused' | 'failed') => void;
  /** Registrations worked on at once; the rest wait their turn (default 16). See util/admission.ts. */
  registrationConcurrency?: number;
  /** Registrations that may wait; more are refused with UNAVAILABLE, and retried (default 2,000). */
  registrationQueue?: number;
  /** A registration still running after this long gives its turn back and is answered UNAVAILABLE (default 60 s). */
  registrationMaxMs?: number;
}

export class ExecutorRegistry {
  /** Heartbeat details are not written to etcd (DESIGN: nothing high-volume); kept here. */
  private readonly live = new Map<string, LiveInfo>();
  /** Open heartbeat streams by executor: how to end each. */
  private readonly streams = new Map<string, Set<(err: Error) => void>>();
  private readonly now: () => number;
  /** Registrations a few at a time, so heartbeats are not starved when a fleet starts at once. */
  private readonly admission: Admission;
  /** The executors' liveness leases, kept by their heartbeats. */
  private readonly kept: ExecutorLeases;

  constructor(
    private readonly store: ExecutorStore,
    private readonly leases: LeaseStore,
    /** Executors' queues (made at registration: executors have no rights to make them). */
    private readonly queues: Pick<Bus, 'ensureExecutorQueues' | 'deleteExecutorQueue'>,
    /** Executors' NATS users. */
    private readonly nats: Pick<NatsAccess, 'executorUser' | 'revoke'>,
    private readonly opts: RegistryOptions,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
    this.admission = new Admission(opts.registrationConcurrency ?? 16, opts.registrationQueue ?? 2_000, 'registrations');
    this.kept = new ExecutorLeases(store, leases, opts.pingDeadlineSeconds, log, this.now);
  }

  /** `gone` aborts when the caller goes away: a registration still waiting for its turn is then dropped. */
  async register(input: RegisterInput, gone?: AbortSignal): Promise<RegisterOutput> {
    // Compared with every token, so the time taken does not tell which one matched.
    let token: RegistrationToken | undefined;
    for (const t of this.opts.registrationTokens) if (secretEquals(t.token, input.registrationToken ?? '')) token = t;
    if (!token) {
      this.log.warn('registration refused: wrong registration token', { name: input.name });
      throw new UnauthenticatedError('the registration token was not accepted: check registration_token in the executor config');
    }
    const spec = validateRegistration(input, this.opts.limits ?? LIMIT_DEFAULTS);
    const outside = token.groups.length ? spec.groups.filter((g) => !token.groups.includes(g)) : [];
    if (outside.length) {
      this.log.warn('registration refused: groups outside the registration token\'s', { name: spec.name, groups: outside.join(',') });
      throw new PermissionDeniedError(
        `the registration token is scoped to groups ${token.groups.join(', ')}: executor ${spec.name} may not join ${outside.length > 1 ? 'groups' : 'group'} ${outside.join(', ')}`,
      );
    }
    const progress = { step: 'starting' };
    return this.admission.run(() => this.admitted(input, spec, progress), gone, {
      maxRunMs: this.opts.registrationMaxMs ?? 60_000,
      overrun: () => {
        this.log.warn('registration overran its time and gave up its turn', { name: spec.name, step: progress.step });
        return progress.step;
      },
    });
  }

  private async admitted(input: RegisterInput, spec: ReturnType<typeof validateRegistration>, progress: { step: string }): Promise<RegisterOutput> {
    const at = this.now();

    // Re-registration from an existing state file: same id, same secret, updated details.
    if (input.executorId) {
      progress.step = 'reading the executor record from etcd';
      const existing = await this.store.get(input.executorId);
      if (existing && secretMatchesHash(input.executorSecret ?? '', existing.secret_hash)) {
        if (existing.name !== spec.name) {
          throw new ValidationError(`name: this executor is registered as "${existing.name}"; to rename it, remove it and register again`);
        }
        const natsKey = input.natsUserKey || existing.nats_user_key;
        progress.step = 'issuing the client certificate';
        const cert = await this.opts.certificates?.issue(existing.id, input.tlsPublicKey, existing.tls_cert);
        progress.step = 'updating the executor record in etcd';
        const updated = await this.store.update(existing.id, (cur) => ({ ...cur, ...spec, ...(natsKey ? { nats_user_key: natsKey } : {}), ...cert?.fields }));
        // A new key replaces the old one, which must not keep working.
        if (existing.nats_user_key && input.natsUserKey && existing.nats_user_key !== input.natsUserKey) {
          progress.step = 'revoking the old NATS user';
          await this.nats.revoke(existing.nats_user_key, existing.name);
        }
        this.endStreams(existing.id, new UnavailableError(`executor ${existing.name} (${existing.id}) was registered again: heartbeat on a new stream`));
        const out = await this.finish(updated ?? existing, input.executorSecret!, false, cert?.certPem, progress);
        this.log.info('executor re-registered', { id: existing.id, name: existing.name });
        return out;
      }
      if (existing) {
        this.log.warn('re-registration refused: wrong secret', { id: existing.id, name: existing.name });
        throw new UnauthenticatedError(
          `executor ${existing.name} (${existing.id}): the secret in the state file was not accepted; register with --replace and an admin token (--token) to start over`,
        );
      }
    }

    const secret = randomBytes(32).toString('base64url');
    const id = newId(at);
    progress.step = 'issuing the client certificate';
    const cert = await this.opts.certificates?.issue(id, input.tlsPublicKey);
    const rec: ExecutorRecord = {
      id,
      ...spec,
      state: 'STOPPED',
      registered_at_ms: at,
      last_seen_at_ms: 0,
      state_changed_at_ms: at,
      secret_hash: sha256hex(secret),
      lease_id: '',
      ...(input.natsUserKey ? { nats_user_key: input.natsUserKey } : {}),
      ...cert?.fields,
    };
    try {
      progress.step = 'creating the executor record in etcd';
      await this.store.create(rec);
    } catch (err) {
      if (!(err instanceof AlreadyExistsError) || !input.replace) throw err;
      progress.step = 'reading the executor that holds the name';
      const old = await this.store.find(spec.name);
      // Taking over another executor's name (and its node: work) needs more than a registration token.
      const ownSecret = !!input.replaceSecret && secretMatchesHash(input.replaceSecret, old.secret_hash);
      if (!ownSecret && input.replaceBy?.role !== 'admin') {
        this.log.warn('replace refused: neither the replaced executor\'s secret nor an admin token', { name: spec.name, old_id: old.id });
        throw new PermissionDeniedError(
          `--replace of executor ${old.name} (${old.id}) needs an admin token (executor register --token, or GRID_TOKEN) or that executor's own state file; a registration token is not enough`,
        );
      }
      progress.step = 'removing the executor that held the name';
      await this.removeRecord(old);
      await this.onRemoved?.(old);
      progress.step = 'creating the executor record in etcd';
      this.log.info('executor name taken over with --replace', { name: spec.name, old_id: old.id });
      await this.store.create(rec);
    }
    this.log.info('executor registered', { id: rec.id, name: rec.name, groups: rec.groups.join(','), runners: rec.runners.join(',') });
    return this.finish(rec, secret, true, cert?.certPem, progress);
  }

  private async finish(rec: ExecutorRecord, secret: string, created: boolean, tlsCertificate: string | undefined, progress: { step: string }): Promise<RegisterOutput> {
    progress.step = 'creating its JetStream consumers';
    const cons = await this.queues.ensureExecutorQueues({ id: rec.id, groups: groupsOf(rec), runners: rec.runners, concurrency: rec.concurrency });
    progress.step = 'minting its NATS user';
    const natsUser = await this.nats.executorUser({ id: rec.id, name: rec.name, natsUserKey: rec.nats_user_key ?? '', consumers: [cons.node, ...cons.pools], groups: groupsOf(rec) });
    return {
      ...(natsUser ? { natsUser } : {}),
      ...(tlsCertificate ? { tlsCertificate } : {}),
      ...(this.opts.natsCaPem ? { natsCaPem: this.opts.natsCaPem } : {}),
      executorId: rec.id,
      executorSecret: secret,
      created,
      natsServers: this.opts.natsAdvertise,
      jobSubject: subjects.nodeJob(rec.id),
      jobConsumer: cons.node,
      poolConsumers: cons.pools,
      pingDeadlineSeconds: this.opts.pingDeadlineSeconds,
    };
  }

  /**
   * Refuses an executor call whose client certificate is not the executor's current one (on a
   * controller with TLS). Checked before anything else, so a removed executor's certificate is
   * refused even with the right secret.
   */
  async checkCertificate(id: string, peer: PeerCert | undefined): Promise<void> {
    if (!this.opts.certificates) return;
    const rec = id ? await this.store.getFast(id) : undefined;
    if (!rec) {
      this.log.warn('executor call refused: certificate of an unknown or removed executor', { id, serial: peer?.serial ?? '' });
      throw await this.unknownExecutor(id, 'its client certificate is no longer accepted');
    }
    try {
      this.opts.certificates.check(rec, peer);
    } catch (err) {
      this.log.warn('executor call refused: client certificate', { id, name: rec.name, serial: peer?.serial ?? '(none)' });
      throw err;
    }
  }

  /** A new client certificate for a new key, for an executor calling with its current one. */
  async renewCertificate(id: string, secret: string, publicKeyPem: string): Promise<string> {
    const rec = await this.authenticate(id, secret);
    if (!this.opts.certificates) throw new ValidationError('this controller serves gRPC without TLS and issues no certificates');
    const cert = await this.opts.certificates.issue(rec.id, publicKeyPem, rec.tls_cert);
    const updated = await this.store.update(rec.id, (cur) => ({ ...cur, ...cert.fields }));
    if (!updated) throw new UnauthenticatedError(`executor ${rec.id} was removed from the registry; register it again (executor register)`);
    this.log.info('executor certificate renewed', { id: rec.id, name: rec.name, serial: cert.fields.tls_cert!.serial });
    return cert.certPem;
  }

  private async unknownExecutor(id: string, also?: string): Promise<UnauthenticatedError> {
    const removed = id ? await this.store.wasRemoved(id) : false;
    const then = also ? `; ${also}` : '';
    return new UnauthenticatedError(
      removed
        ? `executor ${id} was removed from the registry${then}; register it again (executor register)`
        : `executor ${id || '(none)'} is not registered${then}; run executor register`,
    );
  }

  /**
   * Who a registration token is, for the audit log: its configured name, else its place in the
   * list; undefined when no token matches. Compared like register() does, in constant time.
   */
  registrationTokenName(token: string): string | undefined {
    let name: string | undefined;
    this.opts.registrationTokens.forEach((t, i) => {
      if (secretEquals(t.token, token)) name = t.name || `registration_tokens[${i}]`;
    });
    return name;
  }

  /** The name of a registered executor, or undefined (read from the cache; never refuses). */
  async nameOf(id: string): Promise<string | undefined> {
    if (!id) return undefined;
    return (await this.store.getFast(id).catch(() => undefined))?.name;
  }

  /** Proves the caller is the executor it claims to be; never logs the secret. */
  async authenticate(id: string, secret: string): Promise<ExecutorRecord> {
    const rec = id ? await this.store.getFast(id) : undefined;
    if (!rec) {
      this.log.warn('executor call refused: unknown executor id', { id });
      throw await this.unknownExecutor(id);
    }
    if (!secretMatchesHash(secret, rec.secret_hash)) {
      this.log.warn('executor call refused: wrong secret', { id, name: rec.name });
      throw new UnauthenticatedError(`executor ${rec.name} (${id}): the executor secret was not accepted`);
    }
    return rec;
  }

  async heartbeat(input: HeartbeatInput): Promise<{ state: ExecutorState; pingDeadlineSeconds: number }> {
    try {
      const res = await this.beat(input);
      this.opts.onHeartbeat?.('accepted');
      return res;
    } catch (err) {
      this.opts.onHeartbeat?.(err instanceof UnauthenticatedError ? 'refused' : 'failed');
      throw err;
    }
  }

  /**
   * Opens a heartbeat stream for the executor: authenticates it once (certificate, then secret)
   * and binds the stream to it. Each beat is then checked against the registry without hashing
   * the secret again: a removed executor is refused; changed credentials (a re-registration, a
   * certificate renewal) or a certificate no longer current end the stream, and the executor
   * authenticates again on a new one. `end` is called when this replica removes or re-registers
   * the executor, so its open streams end at once rather than at their next beat.
   */
  async openHeartbeats(id: string, secret: string, peer: PeerCert | undefined, end: (err: Error) => void): Promise<HeartbeatStream> {
    await this.checkCertificate(id, peer);
    const rec = await this.authenticate(id, secret);
    const bound = credentialsOf(rec);
    const ends = this.streams.get(rec.id) ?? new Set();
    ends.add(end);
    this.streams.set(rec.id, ends);
    return {
      executorId: rec.id,
      beat: async (status) => {
        try {
          const cur = await this.store.getFast(rec.id);
          if (!cur) {
            this.log.warn('executor heartbeat stream refused: unknown or removed executor', { id: rec.id });
            throw await this.unknownExecutor(rec.id);
          }
          if (credentialsOf(cur) !== bound) throw new UnavailableError(`executor ${cur.name} (${cur.id}) was registered again or its certificate renewed: heartbeat on a new stream`);
          this.opts.certificates?.check(cur, peer);
          const res = await this.beatAs(cur, status).catch((err: unknown) => {
            throw err instanceof UnavailableError ? new HeartbeatNotRecordedError(err.message, { cause: err }) : err;
          });
          this.opts.onHeartbeat?.('accepted');
          return res;
        } catch (err) {
          this.opts.onHeartbeat?.(err instanceof UnauthenticatedError ? 'refused' : 'failed');
          throw err;
        }
      },
      close: () => {
        ends.delete(end);
        if (!ends.size && this.streams.get(rec.id) === ends) this.streams.delete(rec.id);
      },
    };
  }

  /** Ends this replica's open heartbeat streams of the executor. */
  private endStreams(id: string, err: Error): void {
    const ends = this.streams.get(id);
    this.streams.delete(id);
    for (const end of ends ?? []) end(err);
  }

  private async beat(input: HeartbeatInput): Promise<{ state: ExecutorState; pingDeadlineSeconds: number }> {
    return this.beatAs(await this.authenticate(input.executorId, input.executorSecret), input);
  }

  /** A heartbeat of `rec`, authenticated already: keeps its lease alive (or takes a new one). */
  private beatAs(rec: ExecutorRecord, input: HeartbeatStatus): Promise<{ state: ExecutorState; pingDeadlineSeconds: number }> {
    this.live.set(rec.id, { lastSeenMs: this.now(), runningTasks: input.runningTasks, load: input.load });
    return this.kept.beat(rec, input);
  }

  /** The executor is stopping: STOPPED first, then the lease goes (so it is not EXPIRED). */
  async deregister(id: string, secret: string): Promise<void> {
    const rec = await this.authenticate(id, secret);
    await this.kept.inOrder(rec.id, async () => {
      const at = this.now();
      // The lease the record names when it is marked STOPPED (a beat before may have taken a new one).
      let lease = '';
      await this.store.update(rec.id, (cur) => {
        lease = cur.lease_id;
        return { ...cur, state: 'STOPPED', lease_id: '', last_seen_at_ms: at, state_changed_at_ms: at };
      });
      if (lease) await this.leases.revoke(lease);
      this.kept.forget(rec.id);
    });
    this.live.delete(rec.id);
    this.log.info('executor stopped', { id: rec.id, name: rec.name });
  }

  async list(p: Principal): Promise<ExecutorView[]> {
    authorize(p, 'executors:read');
    const { executors } = await this.store.list();
    return executors.map((e) => this.view(e)).sort((a, b) => a.name.localeCompare(b.name));
  }

  async describe(p: Principal, idOrName: string): Promise<ExecutorView> {
    authorize(p, 'executors:read');
    return this.view(await this.store.find(idOrName));
  }

  /** Called after an executor was removed (its unfinished tasks must end like an expiry's). */
  onRemoved?: (rec: ExecutorRecord) => Promise<void>;

  async remove(p: Principal, idOrName: string): Promise<ExecutorView> {
    authorize(p, 'executors:write');
    const rec = await this.store.find(idOrName);
    await this.removeRecord(rec);
    await this.onRemoved?.(rec);
    this.log.info('executor removed', { id: rec.id, name: rec.name, by: p.name });
    return this.view(rec);
  }

  private async removeRecord(rec: ExecutorRecord): Promise<void> {
    await this.store.remove(rec);
    this.kept.forget(rec.id);
    if (rec.lease_id) await this.leases.revoke(rec.lease_id);
    await this.queues.deleteExecutorQueue(rec.id);
    await this.nats.revoke(rec.nats_user_key, rec.name);
    this.live.delete(rec.id);
    this.endStreams(rec.id, new UnauthenticatedError(`executor ${rec.id} was removed from the registry; register it again (executor register)`));
  }

  /** When this controller last took a heartbeat of the executor (ms), if it did since it started. */
  lastSeen(id: string): number | undefined {
    return this.live.get(id)?.lastSeenMs;
  }

  /**
   * The heartbeats this controller took: when each executor was last seen and what it reported.
   * Kept in memory only (heartbeats are not written to etcd), so another replica's are not here.
   */
  heartbeats(): ExecutorHeartbeat[] {
    return [...this.live].map(([id, l]) => ({ id, last_seen_at_ms: l.lastSeenMs, running_tasks: l.runningTasks, load: l.load }));
  }

  view(e: ExecutorRecord): ExecutorView {
    const { secret_hash: _s, lease_id: _l, ...rest } = e;
    const live = this.live.get(e.id);
    return {
      ...rest,
      last_seen_at_ms: Math.max(e.last_seen_at_ms, live?.lastSeenMs ?? 0),
      running_tasks: live?.runningTasks ?? 0,
      load: live?.load ?? 0,
    };
  }
}

function sha256hex(s: string): string {
  return sha256(s).toString('hex');
}

