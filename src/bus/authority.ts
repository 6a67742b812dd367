// GRID's NATS identities (decentralized JWT auth, nats-server's MEMORY resolver): an operator, a
// system account and the GRID account, whose keys live in one folder (0700, files 0600). The
// controller holds the account signing key: it mints its own user and, at Register, one user per
// executor, with that executor's permissions inside the user JWT, so the server enforces them
// and no server reload is needed to admit a new executor. Removing an executor revokes its user
// in the account JWT; the embedded server is reloaded with it, which also cuts its connection.
//
// Layout of the folder (written by `controller nats-config --auth-dir` or the embedded default):
//   operator.seed, operator.jwt           the operator; operator.jwt goes into the server config
//   system-account.seed, system-account.jwt
//   account.seed                           the GRID account (its JWT is signed anew on change)
//   account-signing.seed                   signs user JWTs (the controller needs only this one day to day)
//   revocations.json                       { "<user public key>": <revoked at, epoch seconds> }

import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeAccount, encodeOperator, encodeUser, type Permissions } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromPublic, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { ConfigError } from '../errors.js';

const FILES = {
  operatorSeed: 'operator.seed',
  operatorJwt: 'operator.jwt',
  systemSeed: 'system-account.seed',
  systemJwt: 'system-account.jwt',
  accountSeed: 'account.seed',
  signingSeed: 'account-signing.seed',
  revocations: 'revocations.json',
} as const;

/** Everything unlimited: GRID's account is the only tenant of its NATS (JetStream included). */
const ACCOUNT_LIMITS = {
  subs: -1,
  conn: -1,
  leaf: -1,
  imports: -1,
  exports: -1,
  data: -1,
  payload: -1,
  wildcards: true,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
};

export type UserPermissions = Permissions;

export interface MintedUser {
  jwt: string;
  /** Only for users whose key pair the controller made itself (its own connection). */
  seed?: string;
  publicKey: string;
}

export class NatsAuthority {
  private revocations: Record<string, number> = {};

  private constructor(
    readonly dir: string,
    private readonly operator: KeyPair,
    readonly operatorJwt: string,
    private readonly system: KeyPair,
    readonly systemAccountJwt: string,
    private readonly account: KeyPair,
    private readonly signing: KeyPair,
  ) {}

  /**
   * Reads the keys in `dir`. With `create`, missing keys are generated first (the embedded
   * default, `controller nats-config`); without it a missing file is a ConfigError naming it.
   */
  static async open(dir: string, opts: { create: boolean; configKey?: string }): Promise<NatsAuthority> {
    const key = opts.configKey ?? 'nats.auth_dir';
    if (opts.create) await mkdir(dir, { recursive: true, mode: 0o700 });
    const seed = async (file: string, make: () => KeyPair): Promise<KeyPair> => {
      const path = join(dir, file);
      if (!existsSync(path)) {
        if (!opts.create) {
          throw new ConfigError(key, `${path} is missing; create the keys with "controller nats-config --auth-dir ${dir}"`);
        }
        const kp = make();
        await writePrivate(path, `${new TextDecoder().decode(kp.getSeed())}\n`);
        return kp;
      }
      try {
        return fromSeed(new TextEncoder().encode((await readFile(path, 'utf8')).trim()));
      } catch (err) {
        throw new ConfigError(key, `${path} is not an nkey seed (${(err as Error).message})`);
      }
    };
    const operator = await seed(FILES.operatorSeed, createOperator);
    const system = await seed(FILES.systemSeed, createAccount);
    const account = await seed(FILES.accountSeed, createAccount);
    const signing = await seed(FILES.signingSeed, createAccount);
    const jwtFile = async (file: string, make: () => Promise<string>): Promise<string> => {
      const path = join(dir, file);
      if (existsSync(path)) return (await readFile(path, 'utf8')).trim();
      const jwt = await make();
      if (opts.create || existsSync(dir)) await writePrivate(path, `${jwt}\n`);
      return jwt;
    };
    const operatorJwt = await jwtFile(FILES.operatorJwt, () => encodeOperator('grid', operator, { system_account: system.getPublicKey() }));
    const systemJwt = await jwtFile(FILES.systemJwt, () => encodeAccount('SYS', system, {}, { signer: operator }));
    const a = new NatsAuthority(dir, operator, operatorJwt, system, systemJwt, account, signing);
    await a.loadRevocations();
    return a;
  }

  get accountPublicKey(): string {
    return this.account.getPublicKey();
  }

  get systemAccountPublicKey(): string {
    return this.system.getPublicKey();
  }

  private async loadRevocations(): Promise<void> {
    try {
      const raw = JSON.parse(await readFile(join(this.dir, FILES.revocations), 'utf8')) as unknown;
      if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
        this.revocations = Object.fromEntries(Object.entries(raw).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** The GRID account's JWT, signed now, with the current revocations. */
  accountJwt(): Promise<string> {
    const body: Record<string, unknown> = { signing_keys: [this.signing.getPublicKey()], limits: ACCOUNT_LIMITS };
    if (Object.keys(this.revocations).length) body.revocations = { ...this.revocations };
    return encodeAccount('GRID', this.account, body, { signer: this.operator });
  }

  /** The block a nats-server needs to trust GRID's identities (operator mode, MEMORY resolver). */
  async serverConfig(): Promise<string> {
    return [
      '# GRID: decentralized JWT authentication (generated; see controller nats-config)',
      `operator: ${this.operatorJwt}`,
      `system_account: ${this.system.getPublicKey()}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${this.system.getPublicKey()}: ${this.systemAccountJwt}`,
      `  ${this.account.getPublicKey()}: ${await this.accountJwt()}`,
      '}',
      '',
    ].join('\n');
  }

  /** A user of the GRID account for a public key someone else holds the seed of. */
  async mintUser(name: string, userPublicKey: string, permissions?: UserPermissions): Promise<MintedUser> {
    let pub: KeyPair;
    try {
      pub = fromPublic(userPublicKey);
    } catch {
      throw new ConfigError('nats_user_key', `${JSON.stringify(userPublicKey)} is not a NATS user public key (it starts with "U")`);
    }
    if (!userPublicKey.startsWith('U')) {
      throw new ConfigError('nats_user_key', `${JSON.stringify(userPublicKey)} is not a NATS user public key (it starts with "U")`);
    }
    const jwt = await encodeUser(name, pub, this.signing, { issuer_account: this.account.getPublicKey(), ...(permissions ?? {}) });
    return { jwt, publicKey: userPublicKey };
  }

  /** A fresh user with its own key pair (the controller's own connection, tests). */
  async mintOwnUser(name: string, permissions?: UserPermissions): Promise<MintedUser & { seed: string }> {
    const kp = createUser();
    const user = await this.mintUser(name, kp.getPublicKey(), permissions);
    return { ...user, seed: new TextDecoder().decode(kp.getSeed()) };
  }

  isRevoked(userPublicKey: string): boolean {
    return this.revocations[userPublicKey] !== undefined;
  }

  /**
   * Revokes every JWT issued so far to this user key; true if that changed the account. The
   * caller then applies the new account JWT to the servers (the embedded one is reloaded).
   */
  async revoke(userPublicKey: string, at = Date.now()): Promise<boolean> {
    if (!userPublicKey || this.revocations[userPublicKey] !== undefined) return false;
    // JWT times are in seconds and a JWT issued in this very second counts as revoked too.
    this.revocations[userPublicKey] = Math.ceil(at / 1000);
    await this.saveRevocations();
    return true;
  }

  /** A removed executor that registers again with the same key proved a registration token. */
  async unrevoke(userPublicKey: string): Promise<boolean> {
    if (this.revocations[userPublicKey] === undefined) return false;
    delete this.revocations[userPublicKey];
    await this.saveRevocations();
    return true;
  }

  private async saveRevocations(): Promise<void> {
    await writePrivate(join(this.dir, FILES.revocations), `${JSON.stringify(this.revocations, null, 2)}\n`);
  }
}

/** A user key pair made where it will be used (the executor): the seed never travels. */
export function newUserKey(): { publicKey: string; seed: string } {
  const kp = createUser();
  return { publicKey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
}

/** The public key of a user seed kept in a state file. */
export function keyFromSeed(seed: string): { publicKey: string; seed: string } {
  return { publicKey: fromSeed(new TextEncoder().encode(seed)).getPublicKey(), seed };
}

async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
