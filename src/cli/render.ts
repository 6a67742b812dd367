// How grid-cli prints records in the format -o asks for: aligned tables for people (wide: with
// more columns), JSON or YAML for scripts, and bare names (one a line) for xargs.

import { stringify as toYaml } from 'yaml';
import { OUTPUTS, type OutputFormat } from '../config/client.js';
import { ValidationError } from '../errors.js';
import { json } from './output.js';

export { OUTPUTS, type OutputFormat };

/** A record (or a list of them) in each of the output formats. */
export interface Shown {
  /** The JSON shape; `yaml` prints the same object. */
  data: unknown;
  /** `name`: one name or id per line; absent when the command prints nothing with a name. */
  names?: string[];
  /** `table`, and `wide` unless `wide` is given; "" prints nothing. */
  text: () => string;
  /** `wide`: the table with more columns. */
  wide?: () => string;
}

/**
 * The text to print for `format`, or undefined when there is nothing to print (`name` of an
 * empty list). `command` names the command in the error of a `name` it cannot give.
 */
export function render(format: OutputFormat, shown: Shown, command: string): string | undefined {
  switch (format) {
    case 'json':
      return json(shown.data);
    case 'yaml':
      return yaml(shown.data);
    case 'name':
      if (!shown.names) {
        const others = OUTPUTS.filter((o) => o !== 'name').join(', ');
        throw new ValidationError(`--output: grid-cli ${command} prints nothing with a name; use one of ${others}`);
      }
      return shown.names.length ? shown.names.join('\n') : undefined;
    case 'wide':
      return (shown.wide ?? shown.text)();
    default:
      return shown.text();
  }
}

/** Prints `shown` in the context's format. */
export function print(ctx: { output: OutputFormat; io: { out: (text: string) => void } }, shown: Shown, command: string): void {
  const text = render(ctx.output, shown, command);
  if (text) ctx.io.out(text);
}

/** The object `json` prints, as YAML: read back through JSON, so both show the very same fields. */
export function yaml(value: unknown): string {
  const plain: unknown = value === undefined ? null : JSON.parse(JSON.stringify(value));
  return toYaml(plain, { lineWidth: 0 }).replace(/\n$/, '');
}
