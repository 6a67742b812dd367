// The controller's TLS material from its config: GRID's CA (made under the data dir on first
// start unless configured), the gRPC server's certificate, and, for the embedded default, the
// certificates of its own nats-server and etcd.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { ControllerConfig } from '../config/controller.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { CertificateAuthority, ensureClientFiles, ensureServerFiles, type ServerNames } from './ca.js';
import type { ServerTls } from './grpc.js';

/** Server certificates GRID issues itself live a year and are made again when a third is left. */
const SERVER_CERT_DAYS = 365;

export interface ControllerTls {
  ca: CertificateAuthority;
  /** The CA certificate's file: what clients and executors verify the controller with. */
  caFile: string;
  server: ServerTls;
  executorCertDays: number;
}

/** The files the embedded nats-server and etcd are started with. */
export interface EmbeddedTlsFiles {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

export function tlsDir(dataDir: string): string {
  return join(dataDir, 'tls');
}

export async function prepareControllerTls(cfg: ControllerConfig, log: Logger): Promise<ControllerTls | undefined> {
  const t = cfg.tls;
  if (!t.enabled) {
    log.warn('gRPC without TLS (tls.enabled false): tokens, executor secrets and secret arguments cross the network readable');
    return undefined;
  }
  let ca: CertificateAuthority;
  let caFile: string;
  if (t.ca_cert_file) {
    ca = await CertificateAuthority.load(t.ca_cert_file, t.ca_key_file);
    caFile = t.ca_cert_file;
  } else {
    const made = await CertificateAuthority.loadOrCreate(tlsDir(cfg.data_dir));
    if (made.created) log.info('created a certificate authority', { file: made.certFile });
    ca = made.ca;
    caFile = made.certFile;
  }
  let server: ServerTls;
  if (t.cert_file) {
    server = { certPem: readKeyed(t.cert_file, 'tls.cert_file'), keyPem: readKeyed(t.key_file, 'tls.key_file'), clientCaPem: ca.certPem };
  } else {
    const names = serverNames([cfg.grpc_address, cfg.http_address], t.server_names);
    const files = await ensureServerFiles(ca, tlsDir(cfg.data_dir), 'controller', names, SERVER_CERT_DAYS);
    if (files.issued) log.info('issued the gRPC server certificate', { file: files.certFile, names: [...names.dns, ...names.ips].join(',') });
    server = { certPem: readFileSync(files.certFile, 'utf8'), keyPem: readFileSync(files.keyFile, 'utf8'), clientCaPem: ca.certPem };
  }
  return { ca, caFile, server, executorCertDays: t.executor_cert_days };
}

/** Certificates for the embedded servers on loopback, and the controller's client certificate to them. */
export async function embeddedTlsFiles(tls: Pick<ControllerTls, 'ca' | 'caFile'>, dataDir: string): Promise<EmbeddedTlsFiles> {
  const dir = tlsDir(dataDir);
  const loopback: ServerNames = { dns: ['localhost'], ips: ['127.0.0.1', '::1'] };
  const server = await ensureServerFiles(tls.ca, dir, 'embedded-server', loopback, SERVER_CERT_DAYS);
  const client = await ensureClientFiles(tls.ca, dir, 'controller-client', SERVER_CERT_DAYS);
  return { caFile: tls.caFile, serverCertFile: server.certFile, serverKeyFile: server.keyFile, clientCertFile: client.certFile, clientKeyFile: client.keyFile };
}

/**
 * The configured names, or loopback, this host's name and the listen addresses' hosts (gRPC's,
 * and the HTTP door's, which serves the same certificate; "" = none).
 */
export function serverNames(listenAddresses: string | string[], configured: string[]): ServerNames {
  const hosts = [listenAddresses]
    .flat()
    .filter(Boolean)
    .map((a) => a.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''))
    .filter((h) => h && h !== '0.0.0.0' && h !== '::');
  const all = configured.length ? configured : ['localhost', '127.0.0.1', '::1', hostname(), ...hosts];
  const unique = [...new Set(all)];
  return { dns: unique.filter((n) => isIP(n) === 0), ips: unique.filter((n) => isIP(n) !== 0) };
}

function readKeyed(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
