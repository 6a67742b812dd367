// Executors' client certificates: issued by GRID's CA at Register and on renewal, for a key the
// executor made, and checked on every executor call, so a certificate works only while it is its
// executor's current (or just-renewed previous) one: removing or replacing the executor ends it.

import type { ExecutorCertRef, ExecutorRecord } from '../domain/executor.js';
import { UnauthenticatedError, ValidationError } from '../errors.js';
import type { CertificateAuthority, PeerCert } from '../tls/ca.js';

export class ExecutorCertificates {
  constructor(
    private readonly ca: CertificateAuthority,
    private readonly days: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A certificate for `executorId` and the fields that record it (the current one becomes previous). */
  async issue(
    executorId: string,
    publicKeyPem: string | undefined,
    current?: ExecutorCertRef,
  ): Promise<{ certPem: string; fields: Pick<ExecutorRecord, 'tls_cert' | 'tls_prev_cert'> }> {
    if (!publicKeyPem) {
      throw new ValidationError('tls_public_key: missing; this controller gives every executor a client certificate for a key it makes (upgrade the executor)', { subject: 'executor registration' });
    }
    const c = await this.ca.issueClient(executorId, publicKeyPem, this.days);
    const ref: ExecutorCertRef = { serial: c.serial, not_after_ms: c.notAfterMs };
    const prev = current && current.not_after_ms > this.now() ? current : undefined;
    return { certPem: c.certPem, fields: { tls_cert: ref, ...(prev ? { tls_prev_cert: prev } : {}) } };
  }

  /** Refuses a call whose verified client certificate is not this executor's current one. */
  check(rec: ExecutorRecord, peer: PeerCert | undefined): void {
    const who = `executor ${rec.name} (${rec.id})`;
    if (!peer) {
      throw new UnauthenticatedError(`${who}: the call carries no client certificate issued by the controller's CA; run executor register again to get one`);
    }
    if (peer.commonName !== rec.id) {
      throw new UnauthenticatedError(`${who}: the client certificate was issued to ${peer.commonName || '(no name)'}, not to this executor`);
    }
    const at = this.now();
    const known = [rec.tls_cert, rec.tls_prev_cert].some((r) => r && r.serial === peer.serial && r.not_after_ms > at);
    if (!known) {
      throw new UnauthenticatedError(`${who}: client certificate ${peer.serial} is no longer valid (revoked by a re-registration or renewal); run executor register again`);
    }
  }
}
