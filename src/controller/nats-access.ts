// Who may use GRID's NATS: the controller's own user, one user per executor (minted at Register
// with that executor's permissions), submitters' users for the request intake (minted for a
// token that may execute), and revocation when an executor is removed or replaced.
// With `nats.auth: none` (a NATS without authentication, asked for explicitly) it mints nothing.
//
// Revoked user keys are kept in etcd (`nats-revocations`), so every replica signs the same
// account. A change is pushed to the servers as a new account JWT on $SYS.REQ.CLAIMS.UPDATE
// (NATS-based resolver). Not the MEMORY resolver with a config reload: on nats-server 2.9 a
// reload that touches accounts closes every JWT user's connection, so each removal would have
// disconnected the whole fleet and the controller.

import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connectBus, type NatsTls, type NatsUser } from '../bus/connect.js';
import { NatsAuthority } from '../bus/authority.js';
import { executorInboxPrefix, executorPermissions, submitterInboxPrefix, submitterPermissions } from '../bus/permissions.js';
import type { ControllerConfig } from '../config/controller.js';
import { ConfigError, UnavailableError, ValidationError } from '../errors.js';
import type { Kv } from '../store/kv.js';
import type { Logger } from '../util/log.js';

export interface ExecutorNatsUser {
  jwt: string;
  inboxPrefix: string;
}

/** A submitter's user: the same two things (its inbox prefix is named by its user key). */
export type SubmitterNatsUser = ExecutorNatsUser;

type Revocations = Record<string, number>;

export class NatsAccess {
  private target?: { kv: Kv; servers: string[]; tls: NatsTls };

  private constructor(
    readonly authority: NatsAuthority | undefined,
    /** The controller's own connection. */
    readonly controllerUser: NatsUser | undefined,
    private readonly log: Logger,
  ) {}

  static async open(cfg: ControllerConfig, embedded: boolean, log: Logger): Promise<NatsAccess> {
    if (cfg.nats.auth === 'none') {
      if (embedded) throw new ConfigError('nats.auth', '"none" is only for an external NATS without authentication; the embedded NATS always authenticates');
      log.warn('nats.auth is "none": anyone who can reach NATS can run work on every executor; see the README on securing NATS');
      return new NatsAccess(undefined, undefined, log);
    }
    if (!embedded && !cfg.nats.auth_dir) {
      throw new ConfigError(
        'nats.auth_dir',
        'missing; GRID mints every NATS user itself: run "controller nats-config --auth-dir DIR", add the printed block to your nats-server config, and set nats.auth_dir to DIR (or nats.auth: "none" for a NATS without authentication)',
      );
    }
    const dir = cfg.nats.auth_dir || join(cfg.data_dir, 'nats-auth');
    const authority = await NatsAuthority.open(dir, { create: embedded });
    const own = await authority.mintOwnUser('grid-controller');
    return new NatsAccess(authority, { jwt: own.jwt, seed: own.seed }, log);
  }

  get enabled(): boolean {
    return this.authority !== undefined;
  }

  private key(kv: Kv): string {
    return kv.key('nats-revocations');
  }

  /**
   * From now on revocations are kept in `kv` and pushed to `servers`. Brings the servers up to
   * date at once: a server started from a preload (or one that missed an update) gets them.
   */
  async attach(o: { kv: Kv; servers: string[]; tls: NatsTls }): Promise<void> {
    if (!this.authority) return;
    this.target = o;
    const revoked = (await o.kv.get<Revocations>(this.key(o.kv)))?.value ?? {};
    this.authority.setRevocations(revoked);
    if (Object.keys(revoked).length) await this.push();
  }

  /** The executor's user for its public key: its own consumers and subjects (`groups` for fan-out pointers), nothing else. */
  async executorUser(e: { id: string; name: string; natsUserKey: string; consumers: string[]; groups: string[] }): Promise<ExecutorNatsUser | undefined> {
    if (!this.authority) return undefined;
    if (!e.natsUserKey) {
      throw new ValidationError(
        `nats_user_key: executor ${e.name} sent no NATS user key; this controller's NATS authenticates every connection, so upgrade the executor and register again`,
      );
    }
    // A removed executor registering again with its old key (it proved a registration token):
    // its old JWTs stay revoked, the new one must be issued after the revocation's second.
    const revokedAt = this.authority.revokedAt(e.natsUserKey);
    if (revokedAt !== undefined) {
      const waitMs = (revokedAt + 1) * 1000 - Date.now();
      if (waitMs > 0) await delay(waitMs);
    }
    const user = await this.authority.mintUser(`executor ${e.name} (${e.id})`, e.natsUserKey, executorPermissions({ id: e.id, consumers: e.consumers, groups: e.groups }));
    return { jwt: user.jwt, inboxPrefix: executorInboxPrefix(e.id) };
  }

  /**
   * A submitter's user for its public key: it may publish execution requests for the intake
   * and hear its own inbox, until `expiresAtMs`. Undefined when NATS does not authenticate.
   */
  async submitterUser(who: string, userPublicKey: string, expiresAtMs: number): Promise<SubmitterNatsUser | undefined> {
    if (!this.authority) return undefined;
    const user = await this.authority.mintUser(`submitter ${who}`, userPublicKey, submitterPermissions(userPublicKey), Math.floor(expiresAtMs / 1000));
    return { jwt: user.jwt, inboxPrefix: submitterInboxPrefix(userPublicKey) };
  }

  /** Ends a NATS user: its open connection is cut and it cannot connect again. */
  async revoke(userKey: string | undefined, who: string): Promise<void> {
    if (!this.authority || !userKey) return;
    // JWT times are in seconds, and one issued in this very second counts as revoked too.
    const at = Math.ceil(Date.now() / 1000);
    // Again after a re-registration with the same key: the later time covers its newer JWT too.
    if (await this.change((r) => ((r[userKey] ?? 0) >= at ? undefined : ((r[userKey] = at), r)))) {
      this.log.info('NATS user revoked', { executor: who, user: userKey });
    }
  }

  /** Applies `fn` to the revocations in etcd (undefined = no change), then pushes the account. */
  private async change(fn: (r: Revocations) => Revocations | undefined): Promise<boolean> {
    const t = this.target;
    if (!t || !this.authority) return false;
    let changed = false;
    const next = await t.kv.update<Revocations>(this.key(t.kv), (cur) => {
      const r = fn({ ...(cur ?? {}) });
      changed = r !== undefined;
      return r;
    }, 'NATS revocations');
    if (!changed) return false;
    this.authority.setRevocations(next ?? {});
    try {
      await this.push();
    } catch (err) {
      // Recorded in etcd all the same: the next controller start pushes it again.
      this.log.error('could not push the NATS account update to the servers; it is pushed again when a controller starts', {
        error: (err as Error).message,
      });
    }
    return true;
  }

  /** Sends the account JWT, signed now with the current revocations, to the servers. */
  private async push(): Promise<void> {
    const t = this.target!;
    const jwt = await this.authority!.accountJwt();
    const nc = await connectBus({ servers: t.servers, name: 'grid-controller-system', user: await this.authority!.systemUser(), tls: t.tls, connectTimeoutMs: 5_000 });
    try {
      const res = await nc.request('$SYS.REQ.CLAIMS.UPDATE', jwt, { timeout: 5_000 });
      const body = JSON.parse(res.string()) as { data?: { code?: number; message?: string }; error?: { code?: number; description?: string } };
      if (body.data?.code !== 200) {
        throw new UnavailableError(`NATS did not take the GRID account update: ${body.error?.description ?? body.data?.message ?? res.string()}`);
      }
    } finally {
      await nc.close();
    }
  }
}
