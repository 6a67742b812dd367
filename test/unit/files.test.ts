// Configuration files, the pure parts: store names, digests, template rendering and modes.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkFileName, normaliseDigest } from '../../src/controller/files.js';
import { ValidationError } from '../../src/errors.js';
import { digestProblem, parseMode, renderFile, TaskFileError } from '../../src/executor/files.js';

describe('file names', () => {
  it.each(['nginx.conf.tmpl', 'app/settings.json', 'a', 'deep/er/x_y-z.1', 'x'.repeat(255), '.env'])('accepts %s', (n) => {
    expect(checkFileName(n)).toBe(n);
  });

  it.each([
    ['', /missing; name the file/],
    ['x'.repeat(256), /is 256 characters long; a file name has at most 255/],
    ['a b', /contains " "; use letters, digits, "\.", "_", "-" and "\/"/],
    ['conf\\x', /contains "\\\\"/],
    ['é.conf', /contains "é"/],
    ['../etc/passwd', /must not contain "\.\."/],
    ['a/../b', /must not contain "\.\."/],
    ['a..b', /must not contain "\.\."/],
    ['/etc/passwd', /must not start or end with "\/"/],
    ['dir/', /must not start or end with "\/"/],
    ['a//b', /contain "\/\/"/],
    ['a/./b', /"\." as a folder or file name/],
  ])('refuses %j', (n, why) => {
    let err: unknown;
    try {
      checkFileName(n);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/^name: /);
    expect((err as Error).message).toMatch(why);
  });
});

describe('digests', () => {
  const data = new TextEncoder().encode('hello\n');
  const sha = `sha256:${createHash('sha256').update(data).digest('hex')}`;

  it('normalises given digests and refuses others', () => {
    expect(normaliseDigest(sha.toUpperCase().replace('SHA256', 'sha256'))).toBe(sha);
    expect(normaliseDigest(sha.slice(7))).toBe(sha);
    expect(() => normaliseDigest('md5:abc')).toThrow(/is not a SHA-256 digest/);
  });

  it('content that does not match the stored digest is reported as tampered', () => {
    expect(digestProblem('a.conf', sha, data)).toBeUndefined();
    expect(digestProblem('a.conf', sha, new TextEncoder().encode('hello!\n'))).toMatch(
      /^file "a\.conf" was tampered with: digest mismatch \(stored sha256:[0-9a-f]{64}, content sha256:[0-9a-f]{64}\)/,
    );
    expect(digestProblem('a.conf', undefined, data)).toMatch(/has no digest recorded by GRID/);
  });
});

describe('rendering templates', () => {
  const args = { PORT: '8080', NAME: 'web.example', EMPTY: '' };

  it('replaces {{NAME}} (spaces allowed inside the braces) and leaves other text alone', () => {
    expect(renderFile('f', 'listen {{PORT}};\nserver_name {{ NAME }};\nx={{EMPTY}}.\n', args)).toBe('listen 8080;\nserver_name web.example;\nx=.\n');
    expect(renderFile('f', '{{ .Values.x }} {{not one}} {{}} { {PORT} } $PORT', args)).toBe('{{ .Values.x }} {{not one}} {{}} { {PORT} } $PORT');
    expect(renderFile('f', '{{PORT}}{{PORT}}', args)).toBe('80808080');
  });

  it('does not render a value as a template again', () => {
    expect(renderFile('f', '{{A}}', { A: '{{B}}', B: 'no' })).toBe('{{B}}');
  });

  it('fails on an unknown placeholder, naming it and the arguments there are', () => {
    expect(() => renderFile('app.conf', 'user={{USER}}', args)).toThrow(TaskFileError);
    expect(() => renderFile('app.conf', 'user={{USER}}', args)).toThrow(
      'file "app.conf": unknown placeholder {{USER}}; the execution\'s arguments are EMPTY, NAME, PORT',
    );
    expect(() => renderFile('app.conf', '{{X}}', {})).toThrow('the execution has no arguments');
  });

  it('does not render secrets into files', () => {
    expect(() => renderFile('db.conf', 'password={{DB_PASSWORD}}', { DB_PASSWORD: 'hunter2' }, ['DB_PASSWORD'])).toThrow(
      'file "db.conf": {{DB_PASSWORD}} is a secret; secrets are not rendered into files, the task reads it from the environment variable DB_PASSWORD',
    );
  });

  it('does not treat an inherited property as an argument', () => {
    expect(() => renderFile('f', '{{constructor}}', {})).toThrow(/unknown placeholder \{\{constructor\}\}/);
  });
});

describe('modes', () => {
  it('parses octal strings', () => {
    expect(parseMode('0644')).toBe(0o644);
    expect(parseMode('755')).toBe(0o755);
    expect(parseMode('0600')).toBe(0o600);
    expect(parseMode(undefined)).toBeUndefined();
    expect(() => parseMode('0999')).toThrow(/not an octal mode/);
  });
});
