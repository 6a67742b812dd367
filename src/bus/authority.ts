// GRID's NATS identities (decentralized JWT auth, nats-server's NATS-based `full` resolver): an
// operator, a system account and the GRID account, whose keys live in one folder (0700, files
// 0600). The controller holds the account signing key: it mints its own user and, at Register,
// one user per executor, with that executor's permissions inside the user JWT, so the server
// enforces them and nothing on the server changes to admit a new executor. Removing an executor
// revokes its user in the account JWT, which the controller signs anew and pushes to the servers
// over the system account ($SYS.REQ.CLAIMS.UPDATE): the server cuts that user's connection and
// refuses it from then on, with no reload (see nats-access.ts for why not the MEMORY resolver).
//
// Layout of the folder (written by `controller nats-config --auth-dir` or the embedded default):
//   operator.seed, operator.jwt           the operator; operator.jwt goes into the server config
//   system-account.seed, system-account.jwt
//   account.seed                           the GRID account (its JWT is signed anew on change)
//   account-signing.seed                   signs user JWTs

import { createPrivateKey, sign as edSign, type KeyObject } from 'node:crypto';
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
} as const;

/** The system account: connections and subscriptions, no JetStream. */
const SYSTEM_LIMITS = { subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, payload: -1, wildcards: true };

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
    const operator = fastSigner(await seed(FILES.operatorSeed, createOperator));
    const system = fastSigner(await seed(FILES.systemSeed, createAccount));
    const account = fastSigner(await seed(FILES.accountSeed, createAccount));
    const signing = fastSigner(await seed(FILES.signingSeed, createAccount));
    const jwtFile = async (file: string, make: () => Promise<string>): Promise<string> => {
      const path = join(dir, file);
      if (existsSync(path)) return (await readFile(path, 'utf8')).trim();
      // Made once and kept: the servers' config quotes these very JWTs.
      const jwt = await make();
      await writePrivate(path, `${jwt}\n`);
      return jwt;
    };
    const operatorJwt = await jwtFile(FILES.operatorJwt, () => encodeOperator('grid', operator, { system_account: system.getPublicKey() }));
    const systemJwt = await jwtFile(FILES.systemJwt, () => encodeAccount('SYS', system, { limits: SYSTEM_LIMITS }, { signer: operator }));
    return new NatsAuthority(dir, operator, operatorJwt, system, systemJwt, account, signing);
  }

  get accountPublicKey(): string {
    return this.account.getPublicKey();
  }

  get systemAccountPublicKey(): string {
    return this.system.getPublicKey();
  }

  /** The revoked user keys (kept in etcd by the caller): { key: revoked at, epoch seconds }. */
  setRevocations(r: Record<string, number>): void {
    this.revocations = { ...r };
  }

  /** The GRID account's JWT, signed now, with the current revocations. */
  accountJwt(): Promise<string> {
    const body: Record<string, unknown> = { signing_keys: [this.signing.getPublicKey()], limits: ACCOUNT_LIMITS };
    if (Object.keys(this.revocations).length) body.revocations = { ...this.revocations };
    return encodeAccount('GRID', this.account, body, { signer: this.operator });
  }

  /**
   * The block a nats-server needs to trust GRID's identities: operator mode with the NATS-based
   * resolver, which keeps account JWTs (and the updates the controller pushes) in `resolverDir`.
   */
  async serverConfig(resolverDir: string): Promise<string> {
    return [
      '# GRID: decentralized JWT authentication (generated; see controller nats-config)',
      `operator: ${this.operatorJwt}`,
      `system_account: ${this.system.getPublicKey()}`,
      `resolver: { type: full, dir: ${JSON.stringify(resolverDir)}, allow_delete: false, interval: "2m" }`,
      'resolver_preload: {',
      `  ${this.system.getPublicKey()}: ${this.systemAccountJwt}`,
      `  ${this.account.getPublicKey()}: ${await this.accountJwt()}`,
      '}',
      '',
    ].join('\n');
  }

  /**
   * A user of the GRID account for a public key someone else holds the seed of; with
   * `expiresAtSec` (epoch seconds) the server refuses the JWT from then on.
   */
  async mintUser(name: string, userPublicKey: string, permissions?: UserPermissions, expiresAtSec?: number): Promise<MintedUser> {
    let pub: KeyPair;
    try {
      pub = fromPublic(userPublicKey);
    } catch {
      throw new ConfigError('nats_user_key', `${JSON.stringify(userPublicKey)} is not a NATS user public key (it starts with "U")`);
    }
    if (!userPublicKey.startsWith('U')) {
      throw new ConfigError('nats_user_key', `${JSON.stringify(userPublicKey)} is not a NATS user public key (it starts with "U")`);
    }
    const jwt = await encodeUser(name, pub, this.signing, { issuer_account: this.account.getPublicKey(), ...(permissions ?? {}) }, expiresAtSec ? { exp: expiresAtSec } : {});
    return { jwt, publicKey: userPublicKey };
  }

  /** A fresh user with its own key pair (the controller's own connection, tests). */
  async mintOwnUser(name: string, permissions?: UserPermissions): Promise<MintedUser & { seed: string }> {
    const kp = createUser();
    const user = await this.mintUser(name, kp.getPublicKey(), permissions);
    return { ...user, seed: new TextDecoder().decode(kp.getSeed()) };
  }

  /** When this user key's JWTs were revoked (epoch seconds): JWTs issued up to then are refused. */
  revokedAt(userPublicKey: string): number | undefined {
    return this.revocations[userPublicKey];
  }

  /** A user of the system account: the controller pushes account updates as it. */
  async systemUser(): Promise<{ jwt: string; seed: string }> {
    const kp = createUser();
    const jwt = await encodeUser('grid-controller-system', kp, this.system);
    return { jwt, seed: new TextDecoder().decode(kp.getSeed()) };
  }
}

/** A user key pair made where it will be used (the executor): the seed never travels. */
export function newUserKey(): { publicKey: string; seed: string } {
  const kp = createUser();
  return { publicKey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
}

/**
 * The same key pair, signing with Node's Ed25519 instead of the pure-JavaScript one, which also
 * re-derives the key on every call: ~19 ms per user JWT against well under 1 ms, and the
 * controller signs one per registration.
 */
export function fastSigner(kp: KeyPair): KeyPair {
  const publicKey = kp.getPublicKey();
  let key: KeyObject | undefined;
  let privateKey: Uint8Array | undefined;
  return {
    getPublicKey: () => publicKey,
    // The JWT library asks for it (only to see that there is one) before each signature.
    getPrivateKey: () => (privateKey ??= kp.getPrivateKey()),
    getSeed: () => kp.getSeed(),
    sign: (input: Uint8Array) => {
      key ??= createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, rawSeed(kp.getSeed())]), format: 'der', type: 'pkcs8' });
      return new Uint8Array(edSign(null, input, key));
    },
    verify: (input, sig) => kp.verify(input, sig),
    clear: () => kp.clear(),
    seal: (input, recipient, nonce) => kp.seal(input, recipient, nonce),
    open: (message, sender) => kp.open(message, sender),
  };
}

/** DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An nkey seed is base32 of two prefix bytes, the 32-byte Ed25519 seed and a CRC-16. */
function rawSeed(seed: Uint8Array): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const c of new TextDecoder().decode(seed)) {
    const v = alphabet.indexOf(c);
    if (v < 0) continue;
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out.slice(2, 34));
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
