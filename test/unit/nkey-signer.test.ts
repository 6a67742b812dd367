// The connect nonce signed with node:crypto must be the very signature nkeys (tweetnacl) makes,
// and a NATS server must accept it (the integration and e2e tests connect every executor and
// controller through it); a seed it cannot read goes to nats.js's own authenticator.

import { createUser, fromPublic } from '@nats-io/nkeys';
import { describe, expect, it } from 'vitest';
import { seedKey, signNonce, userAuthenticator } from '../../src/bus/nkey-signer.js';

describe('the nkey nonce signer', () => {
  it('signs a nonce with the same bytes nkeys does, for many keys', () => {
    for (let i = 0; i < 20; i++) {
      const kp = createUser();
      const seed = new TextDecoder().decode(kp.getSeed());
      const nonce = `nonce-${i}-${Math.random().toString(36).slice(2)}`;
      const ours = signNonce(seedKey(seed)!, nonce);
      expect(ours).toBe(Buffer.from(kp.sign(new TextEncoder().encode(nonce))).toString('base64'));
      expect(fromPublic(kp.getPublicKey()).verify(new TextEncoder().encode(nonce), Buffer.from(ours, 'base64'))).toBe(true);
    }
  });

  it('gives the JWT and the signature, and nothing to sign without a nonce', () => {
    const kp = createUser();
    const auth = userAuthenticator('the.jwt.here', new TextDecoder().decode(kp.getSeed()));
    const withNonce = auth('abc') as { jwt: string; sig: string };
    expect(withNonce.jwt).toBe('the.jwt.here');
    expect(fromPublic(kp.getPublicKey()).verify(new TextEncoder().encode('abc'), Buffer.from(withNonce.sig, 'base64'))).toBe(true);
    expect((auth(undefined) as { sig: string }).sig).toBe('');
  });

  it('reads no key from a seed whose checksum, length or prefix is wrong', () => {
    const seed = new TextDecoder().decode(createUser().getSeed());
    const flipped = seed.slice(0, 10) + (seed[10] === 'A' ? 'B' : 'A') + seed.slice(11);
    expect(seedKey(flipped)).toBeUndefined();
    expect(seedKey(seed.slice(0, -4))).toBeUndefined();
    expect(seedKey('UD' + seed.slice(2))).toBeUndefined(); // a public key's prefix, not a seed's
    expect(seedKey('not base32!')).toBeUndefined();
    // nats.js's authenticator then reports what is wrong with it, at connect.
    expect(() => userAuthenticator('jwt', flipped)('nonce')).toThrow();
  });
});
