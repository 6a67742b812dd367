// The use-cases know no transport: outside src/controller/doors/, no controller module imports
// gRPC (@grpc/*), Fastify, or the generated protobuf code (src/gen/), which carries the gRPC
// service definitions. Each door adapts the use-cases for its own transport.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const controllerDir = join(root, 'src', 'controller');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every module a source file imports (static imports, re-exports and dynamic imports). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1] ?? m[2]!);
  return found;
}

const TRANSPORT = /^@grpc\/|^fastify$|^@fastify\/|(^|\/)gen\//;

describe('the controller\'s use-cases and their doors', () => {
  it('finds the imports it checks (the check itself works)', () => {
    const grpcServer = join(controllerDir, 'doors', 'grpc', 'server.ts');
    expect(importsOf(grpcServer).filter((i) => TRANSPORT.test(i)).length).toBeGreaterThan(0);
  });

  it('no module outside src/controller/doors/ imports gRPC, Fastify or the generated code', () => {
    const outside = sources(controllerDir).filter((f) => !relative(controllerDir, f).startsWith(`doors`));
    expect(outside.length).toBeGreaterThan(10);
    const offenders = outside.flatMap((f) => importsOf(f).filter((i) => TRANSPORT.test(i)).map((i) => `${relative(root, f)} imports ${i}`));
    expect(offenders).toEqual([]);
  });
});
