// `executor register`: trade the registration token for an executor id and secret, and keep
// them in the state file. Registering again from the same state file keeps the same identity.

import type { ExecutorConfig } from '../config/executor.js';
import { GridClient } from '../client/client.js';
import type { Logger } from '../util/log.js';
import { VERSION } from '../version.js';
import { loadIdentityIfAny, saveIdentity, type ExecutorIdentity } from './state.js';
import { keyFromSeed, newUserKey } from '../bus/authority.js';
import { newClientKey } from '../tls/keys.js';
import { controllerTls } from './certificate.js';

export async function registerExecutor(
  cfg: ExecutorConfig,
  opts: { replace: boolean; /** An admin API token: lets --replace take over another executor's name. */ token?: string },
  log: Logger,
): Promise<ExecutorIdentity & { created: boolean }> {
  // With --replace the old state file (if any) only proves the old executor was this one.
  const found = await loadIdentityIfAny(cfg.state_file).catch(() => undefined);
  const previous = opts.replace ? undefined : found;
  // The NATS user's key pair is made here and its seed stays in the state file: the controller
  // only ever sees the public key, which it signs a JWT for.
  const natsKey = previous?.nats_user_seed ? keyFromSeed(previous.nats_user_seed) : newUserKey();
  // A new TLS key at every registration; the certificate comes back for its public half.
  const tlsKey = cfg.plaintext ? undefined : await newClientKey();
  const client = new GridClient({ address: cfg.controller, timeoutMs: 15_000, tls: controllerTls(cfg), ...(opts.token ? { token: opts.token } : {}) });
  try {
    const res = await client.call(client.executors, client.executors.register, {
      registrationToken: cfg.registration_token,
      name: cfg.name,
      groups: cfg.groups,
      labels: cfg.labels,
      runners: cfg.runners,
      concurrency: cfg.concurrency,
      pingIntervalSeconds: cfg.ping_interval_seconds,
      version: VERSION,
      replace: opts.replace,
      executorId: previous?.executor_id ?? '',
      executorSecret: previous?.executor_secret ?? '',
      natsUserKey: natsKey.publicKey,
      replaceSecret: opts.replace && found?.name === cfg.name ? found.executor_secret : '',
      tlsPublicKey: tlsKey?.publicKeyPem ?? '',
    });
    const identity: ExecutorIdentity = {
      executor_id: res.executorId,
      executor_secret: res.executorSecret,
      name: cfg.name,
      controller: cfg.controller,
      nats_servers: res.nats?.servers ?? [],
      job_consumer: res.nats?.jobConsumer ?? '',
      pool_consumers: res.nats?.poolConsumers ?? [],
      ping_deadline_seconds: res.pingDeadlineSeconds,
      registered_at_ms: previous?.registered_at_ms ?? Date.now(),
    };
    if (res.nats?.userJwt) {
      identity.nats_user_seed = natsKey.seed;
      identity.nats_user_jwt = res.nats.userJwt;
      identity.nats_inbox_prefix = res.nats.inboxPrefix;
    }
    if (tlsKey && res.tlsCertificate) {
      identity.tls_key = tlsKey.keyPem;
      identity.tls_cert = res.tlsCertificate;
    }
    if (res.nats?.tlsCa) identity.nats_ca = res.nats.tlsCa;
    await saveIdentity(cfg.state_file, identity);
    log.info(res.created ? 'registered' : 'registration refreshed', { id: res.executorId, name: cfg.name, state_file: cfg.state_file });
    return { ...identity, created: res.created };
  } finally {
    client.close();
  }
}
