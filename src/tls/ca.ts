// GRID's own certificate authority: made once (ECDSA P-256, 10 years) and kept as two PEM files,
// it issues the gRPC server's certificate, the embedded NATS and etcd certificates, and each
// executor's client certificate (for a public key the executor made; its key never travels).
//
// Certificates are made with @peculiar/x509 over Node's WebCrypto: it runs on every executor
// without an openssl binary, makes a certificate in about 3 ms, and its extensions
// (SAN, EKU, key identifiers) are typed rather than strings for a command line. Executors'
// client certificates, thousands at once, come from a template it made (cert-template.ts).

import { KeyObject, randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
// @peculiar/x509 resolves its parsers through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { ConfigError, ValidationError } from '../errors.js';
import { certTemplate, fromTemplate, type CertTemplate } from './cert-template.js';
import { EC, privateKeyPem, toPem } from './keys.js';

/**
 * What the controller needs to know of a verified client certificate, whichever door it came
 * through (tls/grpc.ts reads it from a gRPC call).
 */
export interface PeerCert {
  commonName: string;
  /** Lower-case hex. */
  serial: string;
  notAfterMs: number;
}

export { newClientKey } from './keys.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as never);

const SIGNING = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 86_400_000;
/** Certificates start an hour in the past, so a clock slightly behind ours still accepts them. */
const BACKDATE_MS = 3_600_000;

export interface IssuedKeyPair {
  certPem: string;
  keyPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  /** Lower-case hex, as node:crypto's X509Certificate.serialNumber prints it (upper) lower-cased. */
  serial: string;
  notAfterMs: number;
}

/** The names a server certificate is valid for. */
export interface ServerNames {
  dns: string[];
  ips: string[];
}

export class CertificateAuthority {
  private constructor(
    readonly certPem: string,
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
  ) {}

  /** Reads the CA from its two files. */
  static async load(certFile: string, keyFile: string): Promise<CertificateAuthority> {
    const read = (file: string, key: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (err) {
        throw new ConfigError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    const certPem = read(certFile, 'tls.ca_cert_file');
    const keyPem = read(keyFile, 'tls.ca_key_file');
    let cert: x509.X509Certificate;
    let key: CryptoKey;
    try {
      cert = new x509.X509Certificate(certPem);
      key = await webcrypto.subtle.importKey('pkcs8', pemBody(keyPem), EC, false, ['sign']);
    } catch (err) {
      throw new ConfigError('tls.ca_cert_file', `${certFile} and ${keyFile} must be a PEM certificate and its ECDSA P-256 PKCS#8 key (${(err as Error).message})`);
    }
    return new CertificateAuthority(certPem, cert, key);
  }

  /** Loads the CA in `dir` (ca.crt, ca.key), making it first if it is not there. */
  static async loadOrCreate(dir: string, commonName = 'GRID CA'): Promise<{ ca: CertificateAuthority; created: boolean; certFile: string; keyFile: string }> {
    const certFile = join(dir, 'ca.crt');
    const keyFile = join(dir, 'ca.key');
    if (existsSync(certFile) && existsSync(keyFile)) return { ca: await CertificateAuthority.load(certFile, keyFile), created: false, certFile, keyFile };
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: newSerial(),
      name: `CN=${commonName} ${randomBytes(4).toString('hex')}`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + 3650 * DAY_MS),
      signingAlgorithm: SIGNING,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    writePrivate(keyFile, await privateKeyPem(keys.privateKey));
    writeFileAtomically(certFile, cert.toString('pem'), 0o644);
    return { ca: await CertificateAuthority.load(certFile, keyFile), created: true, certFile, keyFile };
  }

  get subject(): string {
    return this.cert.subject;
  }

  /** A server certificate and its new key, for the given names. */
  async issueServer(commonName: string, names: ServerNames, days: number): Promise<IssuedKeyPair> {
    return this.issueWithNewKey(commonName, days, [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.dns.map((value) => ({ type: 'dns' as const, value })),
        ...names.ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ]);
  }

  /** A client certificate and its new key (the controller's own, to etcd and NATS). */
  async issueClientKeyPair(commonName: string, days: number): Promise<IssuedKeyPair> {
    return this.issueWithNewKey(commonName, days, [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])]);
  }

  /**
   * A client certificate for a public key someone else holds the private half of (an executor).
   * `publicKeyPem` must be an ECDSA P-256 SubjectPublicKeyInfo in PEM. Made from the template
   * (cert-template.ts): the same certificate the library would make, for a thirtieth of the CPU.
   */
  async issueClient(commonName: string, publicKeyPem: string, days: number, field = 'tls_public_key'): Promise<IssuedCertificate> {
    const template = await this.clientTemplate();
    const now = Date.now();
    const serial = newSerial();
    let made: { der: Buffer; notAfterMs: number };
    try {
      made = fromTemplate(template, { serialHex: serial, commonName, spki: pemBody(publicKeyPem), notBeforeMs: now - BACKDATE_MS, notAfterMs: now + days * DAY_MS });
    } catch {
      throw new ValidationError([{ path: field, message: 'not an ECDSA P-256 public key in PEM (SubjectPublicKeyInfo)' }]);
    }
    return { certPem: toPem('CERTIFICATE', made.der), serial, notAfterMs: made.notAfterMs };
  }

  /** What every client certificate shares, from one the library makes for a throwaway key. */
  private template?: Promise<CertTemplate>;

  private clientTemplate(): Promise<CertTemplate> {
    this.template ??= (async () => {
      const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
      const example = await this.sign('template', keys.publicKey, 1, [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])]);
      return certTemplate(example.toString('pem'), KeyObject.from(this.key), this.cert.notAfter.getTime());
    })();
    return this.template;
  }

  private async issueWithNewKey(commonName: string, days: number, extensions: x509.Extension[]): Promise<IssuedKeyPair> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await this.sign(commonName, keys.publicKey, days, extensions);
    return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
  }

  /** The same for every certificate this CA signs, so made once. */
  private authorityKeyId?: Promise<x509.AuthorityKeyIdentifierExtension>;

  private async sign(commonName: string, publicKey: CryptoKey, days: number, extensions: x509.Extension[]): Promise<x509.X509Certificate> {
    const now = Date.now();
    this.authorityKeyId ??= x509.AuthorityKeyIdentifierExtension.create(this.cert);
    return x509.X509CertificateGenerator.create({
      serialNumber: newSerial(),
      subject: `CN=${commonName.replace(/[,+="<>#;\\]/g, '_')}`,
      issuer: this.cert.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(Math.min(now + days * DAY_MS, this.cert.notAfter.getTime())),
      signingAlgorithm: SIGNING,
      publicKey,
      signingKey: this.key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        await this.authorityKeyId,
        ...extensions,
      ],
    });
  }
}

/** Serial and expiry of a PEM certificate (node:crypto parses it; no CA needed). */
export function describe(certPem: string): IssuedCertificate {
  const c = new NodeX509(certPem);
  return { certPem, serial: c.serialNumber.toLowerCase(), notAfterMs: Date.parse(c.validTo) };
}

/**
 * Writes a certificate and key into `dir` as `<name>.crt` / `<name>.key` unless a valid one for
 * the same names is already there with more than a third of its life left; returns the paths.
 */
export async function ensureServerFiles(
  ca: CertificateAuthority,
  dir: string,
  name: string,
  names: ServerNames,
  days: number,
): Promise<{ certFile: string; keyFile: string; issued: boolean }> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  if (stillGood(certFile, keyFile, ca, days, names)) return { certFile, keyFile, issued: false };
  const pair = await ca.issueServer(`grid ${name}`, names, days);
  writePrivate(keyFile, pair.keyPem);
  writeFileAtomically(certFile, pair.certPem, 0o644);
  return { certFile, keyFile, issued: true };
}

/** Like ensureServerFiles, for a client certificate (the controller's to etcd). */
export async function ensureClientFiles(ca: CertificateAuthority, dir: string, name: string, days: number): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  if (stillGood(certFile, keyFile, ca, days)) return { certFile, keyFile };
  const pair = await ca.issueClientKeyPair(`grid ${name}`, days);
  writePrivate(keyFile, pair.keyPem);
  writeFileAtomically(certFile, pair.certPem, 0o644);
  return { certFile, keyFile };
}

function stillGood(certFile: string, keyFile: string, ca: CertificateAuthority, days: number, names?: ServerNames): boolean {
  if (!existsSync(certFile) || !existsSync(keyFile)) return false;
  try {
    const c = new NodeX509(readFileSync(certFile));
    if (c.issuer !== new NodeX509(ca.certPem).subject) return false;
    if (!c.verify(new NodeX509(ca.certPem).publicKey)) return false;
    if (Date.parse(c.validTo) - Date.now() < (days * DAY_MS) / 3) return false;
    if (names) {
      const san = c.subjectAltName ?? '';
      const want = [...names.dns.map((d) => `DNS:${d}`), ...names.ips.map((i) => `IP Address:${i}`)];
      if (!want.every((w) => san.split(', ').includes(w))) return false;
    }
    return true;
  } catch {
    return false;
  }
}

function newSerial(): string {
  // 16 random bytes, positive (high bit clear), as RFC 5280 recommends.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f | 0x01;
  return b.toString('hex');
}

function pemBody(pem: string): Buffer {
  const m = /-----BEGIN [A-Z ]+-----([\s\S]+?)-----END [A-Z ]+-----/.exec(pem);
  if (!m) throw new Error('no PEM block');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

function writePrivate(file: string, pem: string): void {
  writeFileAtomically(file, pem, 0o600);
}

function writeFileAtomically(file: string, text: string, mode: number): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}
