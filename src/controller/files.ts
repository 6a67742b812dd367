// Use-cases for configuration files: put (streamed, size-limited, SHA-256 computed here while the
// bytes go by), get, list and delete, in the NATS object store `grid-files`. Transport-free: the
// gRPC adapter calls these with an authenticated principal. The digest of each file is also
// recorded in etcd (`files/<name>`): that record, not the object's own metadata, is what an
// execution pins and what executors check the content against. Executors never touch the
// store: they fetch a task's files from the controller (GetTaskFile).

import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm, type ObjectInfo, type ObjectResult, type ObjectStore } from '@nats-io/obj';
import { BUCKETS } from '../bus/subjects.js';
import { NotFoundError, ValidationError } from '../errors.js';
import type { Kv } from '../store/kv.js';
import { authorize, type Principal } from './auth.js';

/** The largest file `files put` takes. */
export const FILE_MAX_BYTES = 64 * 1024 * 1024;
/** Object metadata key holding GRID's digest of the content: `sha256:<hex>`. */
export const DIGEST_METADATA_KEY = 'grid-digest';

const NAME_MAX = 255;
const NAME_RE = /^[A-Za-z0-9._\-/]+$/;

export interface StoredFile {
  name: string;
  size: number;
  /** `sha256:<hex>`, computed by the controller when the file was put. */
  digest: string;
  modifiedAtMs: number;
}

/** The first part of an upload: the name, and what the sender says the size and digest are. */
export interface PutFileHeader {
  name: string;
  /** 0 = not said. */
  size?: number;
  /** `sha256:<hex>` (or bare hex); '' = not said. */
  digest?: string;
}

/**
 * A file name as the store keeps it: letters, digits, `.`, `_`, `-` and `/` (for folders such
 * as `app/settings.json`), at most 255 characters, no `..`, no leading, trailing or doubled `/`.
 */
export function checkFileName(name: string): string {
  const bad = (why: string) => new ValidationError([{ path: 'name', message: `${JSON.stringify(name)} ${why}` }]);
  if (name === '') throw new ValidationError([{ path: 'name', message: 'missing; name the file, e.g. "nginx.conf.tmpl" or "app/settings.json"' }]);
  if (name.length > NAME_MAX) throw bad(`is ${name.length} characters long; a file name has at most ${NAME_MAX}`);
  if (!NAME_RE.test(name)) {
    const c = [...name].find((ch) => !/[A-Za-z0-9._\-/]/.test(ch));
    throw bad(`contains ${JSON.stringify(c)}; use letters, digits, ".", "_", "-" and "/", e.g. "nginx.conf.tmpl" or "app/settings.json"`);
  }
  if (name.includes('..')) throw bad('must not contain ".."');
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) {
    throw bad('must not start or end with "/" or contain "//"; write folders as "app/settings.json"');
  }
  if (name.split('/').includes('.')) throw bad('must not have "." as a folder or file name');
  return name;
}

/** `sha256:<hex>` from a given digest (`sha256:<hex>` or bare hex), or a validation error. */
export function normaliseDigest(d: string): string {
  const hex = d.toLowerCase().replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new ValidationError([{ path: 'digest', message: `${JSON.stringify(d)} is not a SHA-256 digest; send "sha256:<64 hex digits>"` }]);
  return `sha256:${hex}`;
}

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
}

function tooBig(name: string, size: number, max: number): ValidationError {
  return new ValidationError([{ path: 'size', message: `file "${name}" is ${size} bytes (${mib(size)}); files in GRID are at most ${mib(max)}` }]);
}

export function storedFile(info: ObjectInfo): StoredFile {
  return {
    name: info.name,
    size: info.size,
    digest: info.metadata?.[DIGEST_METADATA_KEY] ?? '',
    modifiedAtMs: info.mtime ? Date.parse(info.mtime) || 0 : 0,
  };
}

/** What etcd keeps of a file: written by the controller after the content is stored. */
interface FileRecord {
  digest: string;
  size: number;
  put_at_ms: number;
  put_by: string;
}

export class FileService {
  private opening: Promise<ObjectStore> | undefined;
  private readonly maxBytes: number;

  constructor(private readonly d: { nc: NatsConnection; kv: Kv; maxBytes?: number }) {
    this.maxBytes = d.maxBytes ?? FILE_MAX_BYTES;
  }

  private recordKey(name: string): string {
    return this.d.kv.key('files', name);
  }

  private async record(p: Principal, f: StoredFile): Promise<StoredFile> {
    const rec: FileRecord = { digest: f.digest, size: f.size, put_at_ms: Date.now(), put_by: p.name };
    await this.d.kv.put(this.recordKey(f.name), rec);
    return f;
  }

  /** The object's info with the digest etcd recorded for it ("" when it has none). */
  private async withRecordedDigest(info: ObjectInfo): Promise<StoredFile> {
    const rec = await this.d.kv.get<FileRecord>(this.recordKey(info.name));
    return { ...storedFile(info), digest: rec?.value.digest ?? '' };
  }

  /** The recorded digests of `names` (Execute pins them); a file with no record is left out. */
  async recordedDigests(names: string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    await Promise.all(
      [...new Set(names)].map(async (n) => {
        const rec = await this.d.kv.get<FileRecord>(this.recordKey(n));
        if (rec) out[n] = rec.value.digest;
      }),
    );
    return out;
  }

  /** A file's bytes for an executor that was allowed to read it (see ExecutionService.taskFile). */
  async *content(name: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const res = await (await this.store()).get(checkFileName(name));
    if (!res) throw new NotFoundError('file', name, 'it is not in the grid-files store; grid-cli files put adds it');
    yield* body(res, signal);
  }

  private store(): Promise<ObjectStore> {
    this.opening ??= new Objm(this.d.nc).open(BUCKETS.files).catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  /**
   * Stores `chunks` under `header.name`, replacing any earlier version only once all of it has
   * arrived. The SHA-256 is computed as the bytes go by. When the sender gave a digest the bytes
   * are streamed into the store and the upload is abandoned (nothing replaced) if they differ;
   * without one they are held until the end (at most the size limit) so the digest can be
   * stored with the object.
   */
  async put(p: Principal, header: PutFileHeader, chunks: AsyncIterable<Uint8Array>): Promise<StoredFile> {
    authorize(p, 'files:write');
    const name = checkFileName(header.name);
    if (header.size && header.size > this.maxBytes) throw tooBig(name, header.size, this.maxBytes);
    const claimed = header.digest ? normaliseDigest(header.digest) : undefined;
    const os = await this.store();
    const hash = createHash('sha256');
    let size = 0;
    const take = (chunk: Uint8Array) => {
      size += chunk.length;
      if (size > this.maxBytes) throw tooBig(name, size, this.maxBytes);
      hash.update(chunk);
    };
    const mismatch = (got: string) =>
      new ValidationError([
        { path: 'digest', message: `the content received for "${name}" is ${got} but the sender said ${claimed}; was the file changed while it was sent? nothing was stored` },
      ]);

    if (claimed) {
      const it = chunks[Symbol.asyncIterator]();
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          let n = await it.next();
          while (!n.done && n.value.length === 0) n = await it.next();
          if (n.done) {
            const got = `sha256:${hash.digest('hex')}`;
            if (got !== claimed) throw mismatch(got);
            if (header.size && header.size !== size) {
              throw new ValidationError([{ path: 'size', message: `received ${size} bytes for "${name}" but the sender said ${header.size}; nothing was stored` }]);
            }
            c.close();
            return;
          }
          take(n.value);
          c.enqueue(n.value);
        },
        async cancel() {
          await it.return?.();
        },
      });
      // An error from `body` makes the store drop what it received; the old version stays.
      return this.record(p, storedFile(await os.put({ name, metadata: { [DIGEST_METADATA_KEY]: claimed } }, body)));
    }

    const parts: Uint8Array[] = [];
    for await (const chunk of chunks) {
      if (chunk.length === 0) continue;
      take(chunk);
      parts.push(chunk);
    }
    const digest = `sha256:${hash.digest('hex')}`;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const next = parts.shift();
        if (next) c.enqueue(next);
        else c.close();
      },
    });
    return this.record(p, storedFile(await os.put({ name, metadata: { [DIGEST_METADATA_KEY]: digest } }, body)));
  }

  async info(p: Principal, name: string): Promise<StoredFile> {
    authorize(p, 'files:read');
    const info = await (await this.store()).info(checkFileName(name));
    if (!info || info.deleted) throw notFound(name);
    return this.withRecordedDigest(info);
  }

  /** The file's info, then its content in chunks (as the store keeps them). */
  async *get(p: Principal, name: string, signal?: AbortSignal): AsyncIterable<{ info?: StoredFile; chunk: Uint8Array }> {
    authorize(p, 'files:read');
    checkFileName(name);
    const res = await (await this.store()).get(name);
    if (!res) throw notFound(name);
    yield { info: await this.withRecordedDigest(res.info), chunk: new Uint8Array(0) };
    for await (const chunk of body(res, signal)) yield { chunk };
  }

  async list(p: Principal): Promise<StoredFile[]> {
    authorize(p, 'files:read');
    const all = await (await this.store()).list();
    const records = new Map((await this.d.kv.list<FileRecord>(this.recordKey(''))).map((r) => [r.key.slice(this.recordKey('').length), r.value]));
    return all
      .filter((i) => !i.deleted)
      .map((i) => ({ ...storedFile(i), digest: records.get(i.name)?.digest ?? '' }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async delete(p: Principal, name: string): Promise<void> {
    authorize(p, 'files:write');
    const os = await this.store();
    const info = await os.info(checkFileName(name));
    if (!info || info.deleted) throw notFound(name);
    await os.delete(name);
    await this.d.kv.delete(this.recordKey(name));
  }
}

/** An object's content as the store reads it, ending with the store's own check of it. */
async function* body(res: ObjectResult, signal?: AbortSignal): AsyncIterable<Uint8Array> {
  const reader = res.data.getReader();
  try {
    for (;;) {
      if (signal?.aborted) return;
      const { done, value } = await reader.read();
      if (done) break;
      if (value && value.length > 0) yield value;
    }
    const err = await res.error;
    if (err) throw err;
  } finally {
    await reader.cancel().catch(() => {});
  }
}

function notFound(name: string): NotFoundError {
  return new NotFoundError('file', name, 'grid-cli files list shows the files in the grid-files store');
}
