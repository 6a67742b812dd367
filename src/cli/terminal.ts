// The process's stdin for grid-cli: read whole (for `--arg K=-`), or, on a terminal, one line
// typed without echo (a password prompt), with the prompt on stderr so stdout stays clean.

import type { CliStdin } from './arg-values.js';
import { ExitWith } from './main.js';

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = ['\u007f', '\b'];

/** Touches process.stdin only when asked: merely opening it can keep a piped grid-cli waiting. */
export function processStdin(): CliStdin {
  return {
    get isTTY() {
      return !!process.stdin.isTTY;
    },
    readAll: (maxBytes) => readAll(process.stdin, maxBytes),
    readHidden: (prompt) => readHidden(process.stdin, process.stderr, prompt),
  };
}

async function readAll(stdin: NodeJS.ReadStream, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > maxBytes) {
      stdin.destroy();
      throw new Error(`more than ${maxBytes / 1024 / 1024} MiB`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Raw mode turns echo off; the line is collected by hand, with backspace, Enter, Ctrl-D and Ctrl-C. */
function readHidden(stdin: NodeJS.ReadStream, out: NodeJS.WriteStream, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let line = '';
    const wasRaw = stdin.isRaw;
    const finish = (then: () => void): void => {
      stdin.off('data', onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      out.write('\n');
      then();
    };
    const onData = (data: Buffer | string): void => {
      const text = String(data);
      // Arrow and function keys arrive as one escape sequence: not part of a password.
      if (text.startsWith('\u001b')) return;
      for (const ch of text) {
        if (ch === '\r' || ch === '\n' || ch === CTRL_D) return finish(() => resolve(line));
        if (ch === CTRL_C) return finish(() => reject(new ExitWith(130)));
        if (BACKSPACE.includes(ch)) line = [...line].slice(0, -1).join('');
        else if (ch >= ' ') line += ch;
      }
    };
    out.write(prompt);
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
  });
}
