// Who may use GRID's NATS: the controller's own user, one user per executor (minted at Register
// with that executor's permissions), and revocation when an executor is removed or replaced.
// With `nats.auth: none` (a NATS without authentication, asked for explicitly) it mints nothing.

import { join } from 'node:path';
import type { NatsUser } from '../bus/connect.js';
import { NatsAuthority } from '../bus/authority.js';
import { executorInboxPrefix, executorPermissions } from '../bus/permissions.js';
import type { ControllerConfig } from '../config/controller.js';
import { ConfigError, ValidationError } from '../errors.js';
import type { Logger } from '../util/log.js';

export interface ExecutorNatsUser {
  jwt: string;
  inboxPrefix: string;
}

export class NatsAccess {
  /** Applies a changed account JWT to the servers; set by whoever runs them (the embedded cluster). */
  applyAccount?: (serverConfig: string) => Promise<void>;

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

  /** The executor's user for its public key: its own consumers and subjects, nothing else. */
  async executorUser(e: { id: string; name: string; natsUserKey: string; consumers: string[] }): Promise<ExecutorNatsUser | undefined> {
    if (!this.authority) return undefined;
    if (!e.natsUserKey) {
      throw new ValidationError(
        `nats_user_key: executor ${e.name} sent no NATS user key; this controller's NATS authenticates every connection, so upgrade the executor and register again`,
      );
    }
    if (await this.authority.unrevoke(e.natsUserKey)) await this.apply();
    const user = await this.authority.mintUser(`executor ${e.name} (${e.id})`, e.natsUserKey, executorPermissions({ id: e.id, consumers: e.consumers }));
    return { jwt: user.jwt, inboxPrefix: executorInboxPrefix(e.id) };
  }

  /** Ends a NATS user: its open connection is cut and it cannot connect again. */
  async revoke(userKey: string | undefined, who: string): Promise<void> {
    if (!this.authority || !userKey) return;
    if (!(await this.authority.revoke(userKey))) return;
    await this.apply();
    this.log.info('NATS user revoked', { executor: who, user: userKey });
  }

  private async apply(): Promise<void> {
    const config = await this.authority!.serverConfig();
    if (this.applyAccount) {
      await this.applyAccount(config);
      return;
    }
    this.log.warn(
      'the NATS account changed (a user was revoked or restored): reload your nats-server with the block "controller nats-config" prints',
      { auth_dir: this.authority!.dir },
    );
  }
}
