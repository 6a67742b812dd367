// The executor's TLS client certificate for the controller: how it connects, and its renewal
// after two thirds of its life, with a new key, swapped into the running client without a restart.

import { X509Certificate } from 'node:crypto';
import type { GridClient } from '../client/client.js';
import type { ExecutorConfig } from '../config/executor.js';
import { newClientKey } from '../tls/keys.js';
import { readCaFile, type ClientTls } from '../tls/grpc.js';
import type { Logger } from '../util/log.js';
import { saveIdentity, type ExecutorIdentity } from './state.js';

/** How this executor verifies the controller, with its client certificate when it has one. */
export function controllerTls(cfg: Pick<ExecutorConfig, 'ca_file' | 'plaintext'>, id?: Pick<ExecutorIdentity, 'tls_cert' | 'tls_key'>): ClientTls {
  if (cfg.plaintext) return { plaintext: true };
  const caPem = readCaFile(cfg.ca_file, 'ca_file');
  return {
    ...(caPem ? { caPem } : {}),
    ...(id?.tls_cert && id.tls_key ? { certPem: id.tls_cert, keyPem: id.tls_key } : {}),
  };
}

/** When a certificate is due for renewal: after two thirds of its life. */
export function renewalDueMs(certPem: string): number {
  const c = new X509Certificate(certPem);
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  return from + ((to - from) * 2) / 3;
}

export interface RenewerDeps {
  client: GridClient;
  cfg: Pick<ExecutorConfig, 'ca_file' | 'plaintext' | 'state_file'>;
  identity: ExecutorIdentity;
  log: Logger;
  now?: () => number;
  /** How often to look at the certificate's age (default hourly). */
  checkEveryMs?: number;
}

export class CertificateRenewer {
  private timer?: NodeJS.Timeout;
  private renewing?: Promise<void>;
  private readonly now: () => number;

  constructor(private readonly d: RenewerDeps) {
    this.now = d.now ?? Date.now;
  }

  start(): void {
    if (!this.d.identity.tls_cert) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), this.d.checkEveryMs ?? 3_600_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Renews if due; failures are logged and tried again at the next check. */
  check(): Promise<void> {
    const cert = this.d.identity.tls_cert;
    if (!cert || this.renewing || this.now() < renewalDueMs(cert)) return this.renewing ?? Promise.resolve();
    this.renewing = this.renew()
      .catch((err: Error) => this.d.log.warn('certificate renewal failed; trying again later', { error: err.message }))
      .finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  async renew(): Promise<void> {
    const { client, identity } = this.d;
    const key = await newClientKey();
    const res = await client.call(client.executors, client.executors.renewCertificate, {
      executorId: identity.executor_id,
      executorSecret: identity.executor_secret,
      tlsPublicKey: key.publicKeyPem,
    });
    identity.tls_key = key.keyPem;
    identity.tls_cert = res.tlsCertificate;
    await saveIdentity(this.d.cfg.state_file, identity);
    client.rotate(controllerTls(this.d.cfg, identity));
    this.d.log.info('client certificate renewed', { serial: new X509Certificate(res.tlsCertificate).serialNumber.toLowerCase(), expires: new X509Certificate(res.tlsCertificate).validTo });
  }
}
