// ECDSA P-256 keys in PEM with Node's WebCrypto alone: what an executor needs to make its TLS
// key. Kept apart from ca.ts so that executors never load the certificate library at start.

import { webcrypto } from 'node:crypto';

export const EC: webcrypto.EcKeyImportParams & webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

/** A new ECDSA P-256 key pair for an executor: the private key (PKCS#8 PEM) stays with it. */
export async function newClientKey(): Promise<{ keyPem: string; publicKeyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return { keyPem: await privateKeyPem(keys.privateKey), publicKeyPem: toPem('PUBLIC KEY', spki) };
}

export async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return toPem('PRIVATE KEY', Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)));
}

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
