// Embedded dev mode: an admin token and an executor registration token are generated once,
// kept in the data directory (mode 0600), and the local client config is written so that the
// first grid-cli command just works. The registration token is also written alone into
// `registration-token`, for another executor's `registration_token_file`.

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { saveClientConfig } from '../config/client.js';
import type { Logger } from '../util/log.js';
import type { TokenSpec } from './auth.js';

/** The registration token alone, in the data directory. */
export const REGISTRATION_TOKEN_FILE = 'registration-token';

interface DevCredentials {
  admin_token: string;
  registration_token: string;
}

export interface DevAccess {
  adminToken: TokenSpec;
  registrationToken: string;
  /** The file holding the registration token alone. */
  registrationTokenFile: string;
  clientConfigPath: string;
  /** Writes the controller's address, the admin token and the CA to verify it with. */
  writeClientConfig(address: string, caFile?: string): Promise<void>;
}

export async function prepareDevAccess(dataDir: string, log: Logger): Promise<DevAccess> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'dev-credentials.json');
  let creds: DevCredentials;
  try {
    creds = JSON.parse(await readFile(file, 'utf8')) as DevCredentials;
  } catch {
    creds = { admin_token: newToken(), registration_token: newToken() };
    await writeFile(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
    log.info('generated dev credentials', { file });
  }
  const registrationTokenFile = join(dataDir, REGISTRATION_TOKEN_FILE);
  await writeFile(registrationTokenFile, creds.registration_token + '\n', { mode: 0o600 });
  await chmod(registrationTokenFile, 0o600);
  log.info('executors register with the token in this file (registration_token_file)', { file: registrationTokenFile });
  const clientConfigPath = join(dataDir, 'client.json');
  return {
    adminToken: { name: 'dev-admin', token: creds.admin_token, role: 'admin', groups: [] },
    registrationToken: creds.registration_token,
    registrationTokenFile,
    clientConfigPath,
    writeClientConfig: async (address, caFile) => {
      await saveClientConfig(clientConfigPath, { controller: address, token: creds.admin_token, ca_file: caFile ?? '', plaintext: !caFile });
      log.info('wrote client config for grid-cli', { file: clientConfigPath });
    },
  };
}

function newToken(): string {
  return randomBytes(24).toString('base64url');
}
