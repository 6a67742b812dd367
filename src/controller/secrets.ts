// Secret argument values, sealed with AES-256-GCM under the controller's secrets key before
// they are stored on an execution. Only BeginTask opens them, for the executor about to run.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, InternalError } from '../errors.js';

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** From the configured key (base64, 32 bytes). */
  static fromBase64(b64: string, key = 'secrets_key'): SecretBox {
    const buf = Buffer.from(b64, 'base64');
    if (buf.length !== 32) throw new ConfigError(key, 'must be 32 random bytes in base64 (e.g. from: openssl rand -base64 32)');
    return new SecretBox(buf);
  }

  /** Embedded mode: a key generated once and kept in the data directory (mode 0600). */
  static async forDataDir(dataDir: string): Promise<SecretBox> {
    const file = join(dataDir, 'secrets.key');
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    try {
      return SecretBox.fromBase64((await readFile(file, 'utf8')).trim(), file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const key = randomBytes(32);
      await writeFile(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
      return new SecretBox(key);
    }
  }

  seal(values: Record<string, string>): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([c.update(JSON.stringify(values), 'utf8'), c.final()]);
    return ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), body.toString('base64')].join('.');
  }

  open(sealed: string): Record<string, string> {
    const [v, iv, tag, body] = sealed.split('.');
    if (v !== 'v1' || !iv || !tag || body === undefined) throw new InternalError('sealed secrets are in an unknown format');
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
      d.setAuthTag(Buffer.from(tag, 'base64'));
      const text = Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8');
      return JSON.parse(text) as Record<string, string>;
    } catch (err) {
      throw new InternalError('cannot open sealed secrets: the controllers do not share the same secrets_key', { cause: err });
    }
  }
}
