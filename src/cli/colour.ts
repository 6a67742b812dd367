// Colour for states in grid-cli's tables, for people reading a terminal: SUCCEEDED and ACTIVE
// green; FAILED, LOST, UNKNOWN and TIMED_OUT red; CANCELLED, DRAINING, EXPIRED (offline) and
// STOPPED yellow; RUNNING cyan; the rest plain. On only for table output (-o table or wide) to a terminal with
// NO_COLOR unset or empty (no-color.org). FORCE_COLOR forces it: on for any value but 0 or false
// (even with NO_COLOR or without a terminal, as node's own FORCE_COLOR does), off for those two.
// JSON, YAML and names are never coloured. picocolors writes the escapes; whether to is decided here, from the
// command's own io, so that tests can say what a terminal is.

import pc from 'picocolors';
import type { OutputFormat } from './render.js';

/** The state's colour applied to `text` (the state name itself when left out). */
export type Paint = (state: string, text?: string) => string;

/** No colour. */
export const plain: Paint = (state, text = state) => text;

const COLOUR_OF: Record<string, 'green' | 'red' | 'yellow' | 'cyan'> = {
  SUCCEEDED: 'green',
  ACTIVE: 'green',
  FAILED: 'red',
  LOST: 'red',
  UNKNOWN: 'red',
  TIMED_OUT: 'red',
  CANCELLED: 'yellow',
  DRAINING: 'yellow',
  EXPIRED: 'yellow',
  STOPPED: 'yellow',
  RUNNING: 'cyan',
};

/** Whether this command's output gets colour (see the top of this file). */
export function colourWanted(io: { isTTY: boolean; env: NodeJS.ProcessEnv }, output: OutputFormat): boolean {
  if (output !== 'table' && output !== 'wide') return false;
  const force = io.env.FORCE_COLOR;
  if (force) return force !== '0' && force !== 'false';
  return io.isTTY && !io.env.NO_COLOR;
}

/** The paint for a command: colours when colourWanted, plain otherwise. */
export function paintFor(ctx: { io: { isTTY: boolean; env: NodeJS.ProcessEnv }; output: OutputFormat }): Paint {
  if (!colourWanted(ctx.io, ctx.output)) return plain;
  const c = pc.createColors(true);
  return (state, text = state) => {
    const colour = COLOUR_OF[state];
    return colour ? c[colour](text) : text;
  };
}
