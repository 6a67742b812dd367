// The run form, from a job definition: one field per argument, typed as the definition says
// (an enum is a select of its values, a bool a select of true and false, a secret a password
// field), and the controller's validation problems placed beside the fields they name. The
// controller checks every value (domain/args.ts); the form only shapes what is typed. Pure.

import type { JobDefinition } from '../domain/job.js';

export type FieldKind = 'text' | 'int' | 'select' | 'password';

export interface FormField {
  /** The name in the execute request's `args` (or `target`, `timeout_seconds`). */
  name: string;
  /** Where the controller's problems about it point: `args.NAME`, `target`. */
  path: string;
  label: string;
  kind: FieldKind;
  description: string;
  required: boolean;
  /** For a select: its options; "" stands for "not given" (the default applies). */
  options?: Array<{ value: string; label: string }>;
  /** Shown in an empty field: the default, or what the value must look like. */
  placeholder: string;
  initial: string;
}

/** The fields for a definition's arguments and secrets, then the target and the timeout. */
export function formFields(def: Pick<JobDefinition, 'env_vars' | 'target' | 'timeout_seconds'>): FormField[] {
  const fields: FormField[] = [];
  for (const a of def.env_vars.args) {
    const base = { name: a.name, path: `args.${a.name}`, label: a.name, description: a.description, required: a.required && a.default === undefined };
    const hint = a.default !== undefined ? `default: ${a.default}` : a.pattern ? `matches ${a.pattern}` : a.required ? 'required' : 'optional';
    if (a.type === 'enum' || a.type === 'bool') {
      const values = a.type === 'enum' ? (a.values ?? []) : ['true', 'false'];
      const options = values.map((v) => ({ value: v, label: v }));
      // An optional argument may be left out; a required one without a default must be chosen.
      const none = a.default !== undefined ? `(default: ${a.default})` : base.required ? '(choose one)' : '(not given)';
      fields.push({ ...base, kind: 'select', options: [{ value: '', label: none }, ...options], placeholder: '', initial: '' });
    } else {
      fields.push({ ...base, kind: a.type === 'int' ? 'int' : 'text', placeholder: hint, initial: '' });
    }
  }
  for (const s of def.env_vars.secrets) {
    fields.push({
      name: s.name,
      path: `args.${s.name}`,
      label: s.name,
      kind: 'password',
      description: s.description,
      required: !!s.required,
      placeholder: s.required ? 'required secret' : 'optional secret',
      initial: '',
    });
  }
  return fields;
}

/** The execute request's body: only the values typed in (an empty field leaves the default). */
export function executeBody(fields: FormField[], values: Record<string, string>, extra: { target: string; timeout: string }): Record<string, unknown> {
  const args: Record<string, string> = {};
  for (const f of fields) {
    const v = values[f.name] ?? '';
    if (v !== '') args[f.name] = v;
  }
  const body: Record<string, unknown> = { args };
  if (extra.target.trim()) body.target = extra.target.trim();
  if (extra.timeout.trim()) {
    // Sent as typed when it is not a whole number, so the controller's refusal names the field.
    const n = Number(extra.timeout.trim());
    body.timeout_seconds = Number.isSafeInteger(n) ? n : extra.timeout.trim();
  }
  return body;
}

export interface Problem {
  field?: string;
  message: string;
}

/**
 * The problems by the field they are shown beside (`args.NAME` under NAME), and those that
 * name no field of the form, shown above it.
 */
export function placeProblems(problems: Problem[], paths: string[]): { byPath: Map<string, string[]>; general: string[] } {
  const byPath = new Map<string, string[]>();
  const general: string[] = [];
  for (const p of problems) {
    const at = p.field && paths.includes(p.field) ? p.field : undefined;
    if (at) byPath.set(at, [...(byPath.get(at) ?? []), p.message]);
    else general.push(p.field ? `${p.field}: ${p.message}` : p.message);
  }
  return { byPath, general };
}
