// What every runner shares about a job's command: the {{name}} templates of `command` elements,
// and the error for a task that cannot be turned into a command (reported as a failed task).

/** A task that cannot be turned into a command; reported as a failed task, not thrown further. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}

const TEMPLATE = /\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g;

/** Replaces each {{name}} with the value of that name; unknown names are errors. */
export function renderTemplate(text: string, values: Record<string, string>): string {
  return text.replace(TEMPLATE, (_, name: string) => {
    const v = Object.hasOwn(values, name) ? values[name] : undefined;
    if (v === undefined) throw new CommandError(`unknown template variable {{${name}}} in command`);
    return v;
  });
}
