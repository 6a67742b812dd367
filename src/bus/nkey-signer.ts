// Signing the NATS server's connect nonce with a user's nkey seed through node:crypto's Ed25519,
// in place of nats.js's jwtAuthenticator, which derives the key pair from the seed and signs in
// pure JavaScript (tweetnacl) on every connect: about 10 ms of CPU each time. That is paid again
// by every executor at every reconnect, so after a NATS restart a host that runs many executors
// (or the bench's fleets, which start 10,000 connections) spent most of its CPU there.
// Ed25519 is deterministic: the signature is the same bytes nkeys would make.

import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { jwtAuthenticator, type Authenticator } from '@nats-io/nats-core';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** The DER of a PKCS#8 Ed25519 private key, less its 32 key bytes (RFC 8410). */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
/** nkeys' first prefix byte of every seed ('S' when encoded). */
const SEED_PREFIX = 18 << 3;

/** An authenticator for a NATS user (JWT + nkey seed) that signs with node:crypto. */
export function userAuthenticator(jwt: string, seed: string): Authenticator {
  const key = seedKey(seed);
  // A seed this cannot read is left to nats.js, whose error says what is wrong with it.
  if (!key) return jwtAuthenticator(jwt, new TextEncoder().encode(seed));
  return (nonce?: string) => ({ jwt, sig: nonce ? signNonce(key, nonce) : '' });
}

/** The nonce's signature as nkeys encodes it (base64). */
export function signNonce(key: KeyObject, nonce: string): string {
  return sign(null, Buffer.from(nonce), key).toString('base64');
}

/** The Ed25519 private key of an nkey seed ("SU…"), or undefined if it is not a valid seed. */
export function seedKey(seed: string): KeyObject | undefined {
  const raw = base32(seed);
  // 2 prefix bytes, 32 key bytes, a CRC-16 (little-endian) of the 34 before it.
  if (!raw || raw.length !== 36 || (raw[0]! & 0xf8) !== SEED_PREFIX) return undefined;
  if (crc16(raw.subarray(0, 34)) !== raw.readUInt16LE(34)) return undefined;
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, raw.subarray(2, 34)]), format: 'der', type: 'pkcs8' });
}

function base32(s: string): Buffer | undefined {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of s) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return undefined;
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** CRC-16/XMODEM (polynomial 0x1021), as nkeys checks its keys with. */
function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const b of data) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}
