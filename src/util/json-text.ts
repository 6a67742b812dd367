// JSON text → value, with syntax errors located by line and column. Node's JSON.parse gives a
// position only in some of its messages, so on failure a small scanner re-reads the text to find
// where it goes wrong and to say why in words an operator editing metadata.json can act on.

export type JsonParseResult =
  | { ok: true; value: unknown }
  | { ok: false; line: number; column: number; message: string };

export function parseJsonText(text: string): JsonParseResult {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return { ok: true, value: JSON.parse(src) };
  } catch (err) {
    let found: { pos: number; message: string } | undefined;
    try {
      found = new Scanner(src).scan();
    } catch {
      found = undefined; // e.g. nesting deep enough to exhaust the stack
    }
    if (!found) found = fromNodeMessage(src, err);
    return { ok: false, ...lineColumn(src, found.pos), message: found.message };
  }
}

/** 1-based line and column of a character offset. */
export function lineColumn(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(Math.max(pos, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

function fromNodeMessage(src: string, err: unknown): { pos: number; message: string } {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /at position (\d+)/.exec(msg);
  return { pos: m ? Number(m[1]) : src.length, message: msg };
}

class SyntaxProblem {
  constructor(readonly pos: number, readonly message: string) {}
}

const VALUE_FORMS = 'a value (a string, number, object, array, true, false or null)';

class Scanner {
  private i = 0;
  constructor(private readonly s: string) {}

  scan(): { pos: number; message: string } | undefined {
    try {
      this.ws();
      if (this.i >= this.s.length) throw new SyntaxProblem(0, 'the text is empty; expected a JSON object');
      this.value();
      this.ws();
      if (this.i < this.s.length) {
        throw new SyntaxProblem(this.i, `unexpected ${this.token()} after the end of the JSON document`);
      }
      return undefined;
    } catch (e) {
      if (e instanceof SyntaxProblem) return { pos: e.pos, message: e.message };
      throw e;
    }
  }

  private ws(): void {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i]!)) this.i++;
  }

  /** The token at the cursor, quoted, for messages. */
  private token(): string {
    const rest = this.s.slice(this.i);
    if (rest.startsWith('"')) {
      const str = /^"(?:[^"\\\n]|\\.){0,24}"?/.exec(rest)![0];
      return str.endsWith('"') && str.length > 1 ? str : `${str}…`;
    }
    const word = /^[A-Za-z0-9_$+\-.]+/.exec(rest);
    return JSON.stringify(word ? word[0].slice(0, 24) : rest.slice(0, 1));
  }

  private unexpected(expected: string): never {
    const c = this.s[this.i];
    if (c === '/') throw new SyntaxProblem(this.i, 'unexpected "/"; JSON does not allow comments');
    if (c === "'") throw new SyntaxProblem(this.i, `unexpected "'"; JSON strings use double quotes`);
    throw new SyntaxProblem(this.i, `unexpected ${this.token()}; expected ${expected}`);
  }

  private endOfInput(what: string, openedAt: number): never {
    const { line, column } = lineColumn(this.s, openedAt);
    throw new SyntaxProblem(this.s.length, `unexpected end of input; the ${what} opened at line ${line}, column ${column} is not closed`);
  }

  private value(): void {
    const c = this.s[this.i];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    for (const lit of ['true', 'false', 'null']) {
      if (this.s.startsWith(lit, this.i) && !/[A-Za-z0-9_$]/.test(this.s[this.i + lit.length] ?? '')) {
        this.i += lit.length;
        return;
      }
    }
    if (c === undefined) throw new SyntaxProblem(this.i, `unexpected end of input; expected ${VALUE_FORMS}`);
    this.unexpected(VALUE_FORMS);
  }

  private object(): void {
    const open = this.i++;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return;
    }
    for (;;) {
      this.ws();
      const c = this.s[this.i];
      if (c === undefined) this.endOfInput('object', open);
      if (c === '}') throw new SyntaxProblem(this.i, 'unexpected "}" after ","; JSON allows no comma after the last field');
      if (c !== '"') {
        if (/[A-Za-z_$]/.test(c)) {
          throw new SyntaxProblem(this.i, `unexpected ${this.token()}; field names must be in double quotes`);
        }
        this.unexpected('a field name in double quotes');
      }
      this.string();
      this.ws();
      if (this.s[this.i] === undefined) this.endOfInput('object', open);
      if (this.s[this.i] !== ':') this.unexpected('":" after the field name');
      this.i++;
      this.ws();
      if (this.s[this.i] === undefined) this.endOfInput('object', open);
      this.value();
      this.ws();
      const d = this.s[this.i];
      if (d === undefined) this.endOfInput('object', open);
      if (d === '}') {
        this.i++;
        return;
      }
      if (d !== ',') this.unexpected('"," or "}" (is a comma missing after the previous field?)');
      this.i++;
    }
  }

  private array(): void {
    const open = this.i++;
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return;
    }
    for (;;) {
      this.ws();
      const c = this.s[this.i];
      if (c === undefined) this.endOfInput('array', open);
      if (c === ']') throw new SyntaxProblem(this.i, 'unexpected "]" after ","; JSON allows no comma after the last item');
      this.value();
      this.ws();
      const d = this.s[this.i];
      if (d === undefined) this.endOfInput('array', open);
      if (d === ']') {
        this.i++;
        return;
      }
      if (d !== ',') this.unexpected('"," or "]" (is a comma missing after the previous item?)');
      this.i++;
    }
  }

  private string(): void {
    const open = this.i++;
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) this.endOfInput('string', open);
      if (c === '"') {
        this.i++;
        return;
      }
      if (c === '\\') {
        const e = this.s[this.i + 1];
        if (e === 'u') {
          if (!/^[0-9A-Fa-f]{4}$/.test(this.s.slice(this.i + 2, this.i + 6))) {
            throw new SyntaxProblem(this.i, 'invalid "\\u" escape in string; it needs four hex digits');
          }
          this.i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) {
          throw new SyntaxProblem(this.i, `invalid escape "\\${e ?? ''}" in string; use \\\\ for a backslash`);
        }
        this.i += 2;
        continue;
      }
      if (c.charCodeAt(0) < 0x20) {
        const what = c === '\n' || c === '\r' ? 'line break' : c === '\t' ? 'tab' : 'control character';
        throw new SyntaxProblem(this.i, `unescaped ${what} in string; write it as an escape such as \\n or \\t`);
      }
      this.i++;
    }
  }

  private number(): void {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i));
    const next = this.s[this.i + (m ? m[0].length : 0)];
    if (!m || (next !== undefined && /[0-9A-Za-z.+\-_]/.test(next))) {
      throw new SyntaxProblem(this.i, `invalid number ${this.token()}`);
    }
    this.i += m[0].length;
  }
}
