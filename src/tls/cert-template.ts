// Executors' client certificates from a template. @peculiar/x509 makes one client certificate per
// CA (the template); every later one is that template's TBSCertificate with its serial, validity,
// subject and public key put in, signed with node:crypto. The library takes about 3 ms of CPU a
// certificate (its ASN.1 object model, and a WebCrypto promise for the signature); this takes
// about a tenth of a millisecond, which is what thousands of executors registering at once need.
// Hand-written because only these four fields change: the DER it writes is a few lengths and
// tags around bytes the library made (issuer, algorithm, extensions).

import { createPublicKey, KeyObject, sign, X509Certificate as NodeX509 } from 'node:crypto';

/** The parts of a library-made certificate that every certificate from the template shares. */
export interface CertTemplate {
  /** `[0] { INTEGER 2 }`: X.509 v3. */
  version: Buffer;
  /** The signature AlgorithmIdentifier, as in the TBSCertificate and after it. */
  algorithm: Buffer;
  issuer: Buffer;
  /** `[3] { Extensions }`: key usages, extended key usage, the authority key identifier. */
  extensions: Buffer;
  caKey: KeyObject;
  caNotAfterMs: number;
}

/** One DER element of `buf`: its tag, where its content starts and where it ends. */
interface Tlv {
  tag: number;
  start: number;
  content: number;
  end: number;
}

function readTlv(buf: Buffer, at: number): Tlv {
  const tag = buf[at]!;
  let length = buf[at + 1]!;
  let content = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n < 1 || n > 3) throw new Error(`DER length of ${n} bytes at ${at}`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[content + i]!;
    content += n;
  }
  if (content + length > buf.length) throw new Error(`DER element at ${at} runs past the end`);
  return { tag, start: at, content, end: content + length };
}

function childrenOf(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.content; at < parent.end; ) {
    const t = readTlv(buf, at);
    out.push(t);
    at = t.end;
  }
  return out;
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), body]);
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5), to the second. */
function derTime(ms: number): Buffer {
  const digits = new Date(ms).toISOString().slice(0, 19).replace(/[-T:]/g, '');
  return new Date(ms).getUTCFullYear() < 2050 ? der(0x17, Buffer.from(`${digits.slice(2)}Z`)) : der(0x18, Buffer.from(`${digits}Z`));
}

const CN_OID = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]);

/** A PrintableString where the name fits one (as the library writes it, an executor id always does), else UTF8String. */
function derName(text: string): Buffer {
  return /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(text) ? der(0x13, Buffer.from(text, 'ascii')) : der(0x0c, Buffer.from(text, 'utf8'));
}

/** Reads the shared parts out of a client certificate the library made with the CA's key. */
export function certTemplate(exampleCertPem: string, caKey: KeyObject, caNotAfterMs: number): CertTemplate {
  const buf = Buffer.from(new NodeX509(exampleCertPem).raw);
  const [tbs] = childrenOf(buf, readTlv(buf, 0));
  const f = childrenOf(buf, tbs!);
  // version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions
  if (f.length !== 8 || f[0]!.tag !== 0xa0 || f[7]!.tag !== 0xa3) throw new Error('the template certificate is not an X.509 v3 certificate with extensions');
  const raw = (t: Tlv) => Buffer.from(buf.subarray(t.start, t.end));
  return { version: raw(f[0]!), algorithm: raw(f[2]!), issuer: raw(f[3]!), extensions: raw(f[7]!), caKey, caNotAfterMs };
}

/**
 * A certificate from the template for `spki` (DER SubjectPublicKeyInfo, checked to be an ECDSA
 * P-256 public key; throws otherwise), valid from `notBeforeMs` to `notAfterMs` (to the second). `serialHex` must be
 * positive and without a leading zero byte, as newSerial makes it.
 */
export function fromTemplate(
  t: CertTemplate,
  o: { serialHex: string; commonName: string; spki: Buffer; notBeforeMs: number; notAfterMs: number },
): { der: Buffer; notAfterMs: number } {
  const key = createPublicKey({ key: o.spki, format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not an ECDSA P-256 public key');
  // An uncompressed P-256 key is 91 bytes of SPKI, all of them the one SEQUENCE: used as it came
  // (exporting it again costs as much as parsing it); any other form, as node:crypto writes it.
  const spki = o.spki.length === 91 && o.spki[1] === 0x59 ? o.spki : key.export({ type: 'spki', format: 'der' });
  const notAfterMs = Math.floor(Math.min(o.notAfterMs, t.caNotAfterMs) / 1000) * 1000;
  const tbs = der(
    0x30,
    t.version,
    der(0x02, Buffer.from(o.serialHex, 'hex')),
    t.algorithm,
    t.issuer,
    der(0x30, derTime(o.notBeforeMs), derTime(notAfterMs)),
    der(0x30, der(0x31, der(0x30, CN_OID, derName(o.commonName)))),
    spki,
    t.extensions,
  );
  const signature = sign('sha256', tbs, { key: t.caKey, dsaEncoding: 'der' });
  return { der: der(0x30, tbs, t.algorithm, der(0x03, Buffer.from([0]), signature)), notAfterMs };
}
