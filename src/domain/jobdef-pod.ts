// The task-pod fields of a definition (kubernetes runner): resources, node_selector,
// tolerations and security_context. Checked at create the way the API server would check the
// Job made from them, each problem naming the field, the value and what would be valid, so that
// a definition is refused when it is created rather than its Job when it runs.

import { didYouMean } from '../util/suggest.js';
import {
  SECCOMP_TYPES,
  TAINT_EFFECTS,
  TOLERATION_OPERATORS,
  type JobDefinition,
  type PodResources,
  type RunnerName,
  type TaskSecurityContext,
  type Toleration,
} from './job.js';
import { fieldPath, isObject, itemPath, type JsonObject, type Problems, show, subject } from './json-shape.js';
import { labelKeyProblem, labelValueProblem, NATIVE_RESOURCES, parseQuantity, quantityHint, resourceNameProblem } from './quantity.js';

export const POD_FIELDS = ['resources', 'node_selector', 'tolerations', 'security_context'] as const;
type PodFields = Pick<JobDefinition, (typeof POD_FIELDS)[number]>;

const RESOURCE_SIDES = ['requests', 'limits'] as const;
const TOLERATION_FIELDS = ['key', 'operator', 'value', 'effect', 'toleration_seconds'] as const;
const SECURITY_FIELDS = [
  'run_as_user', 'run_as_group', 'run_as_non_root', 'fs_group', 'read_only_root_filesystem',
  'allow_privilege_escalation', 'privileged', 'capabilities', 'seccomp_profile',
] as const;
const CAPABILITY_FIELDS = ['add', 'drop'] as const;
const SECCOMP_FIELDS = ['type', 'localhost_profile'] as const;
/** The largest uid or gid Kubernetes takes (int32). */
const MAX_ID = 2 ** 31 - 1;

/** Validates the pod fields present in `raw`; a host-runner definition may not have any. */
export function checkPodFields(p: Problems, raw: JsonObject, runner: RunnerName | undefined): PodFields {
  const out: PodFields = {};
  for (const f of POD_FIELDS) {
    if (p.has(raw, f) && runner === 'host') {
      p.add(f, 'only the kubernetes runner uses it (it shapes the task\'s pod); this job runs on the host runner');
    }
  }
  if (p.has(raw, 'resources')) out.resources = checkResources(p, raw.resources);
  if (p.has(raw, 'node_selector')) out.node_selector = checkNodeSelector(p, raw.node_selector);
  if (p.has(raw, 'tolerations')) out.tolerations = checkTolerations(p, raw.tolerations);
  if (p.has(raw, 'security_context')) out.security_context = checkSecurityContext(p, raw.security_context);
  for (const f of POD_FIELDS) if (out[f] === undefined) delete out[f];
  return out;
}

/** Unknown fields, with the snake_case spelling when the operator wrote Kubernetes' camelCase. */
function knownFields(p: Problems, obj: JsonObject, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const hint = allowed.includes(snake) ? ` (definitions spell it "${snake}")` : didYouMean(key, allowed) || `; known fields are ${allowed.join(', ')}`;
    p.add(fieldPath(path, key), `unknown field${hint}`);
  }
}

function checkResources(p: Problems, raw: unknown): PodResources | undefined {
  const obj = p.object(raw, 'resources', 'an object such as {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}');
  if (!obj) return undefined;
  knownFields(p, obj, 'resources', RESOURCE_SIDES);
  const out: PodResources = { requests: {}, limits: {} };
  const values: Record<string, Record<string, number>> = { requests: {}, limits: {} };
  const before = p.count;
  for (const side of RESOURCE_SIDES) {
    if (!p.has(obj, side)) continue;
    const path = `resources.${side}`;
    const map = p.object(obj[side], path, 'an object of resource name → quantity, e.g. {"cpu": "500m", "memory": "256Mi"}');
    if (!map) continue;
    for (const [name, q] of Object.entries(map)) {
      const at = fieldPath(path, name);
      const bad = resourceNameProblem(name);
      // A GPU is not "cpu" misspelt: it is named by its vendor's device plugin.
      const hint = /gpu/i.test(name) ? ' (a GPU is named by its device plugin, e.g. "nvidia.com/gpu" or "amd.com/gpu")' : didYouMean(name, NATIVE_RESOURCES);
      if (bad) p.add(at, `${bad}${hint}`);
      const text = typeof q === 'number' ? String(q) : q;
      const value = typeof text === 'string' ? parseQuantity(text) : undefined;
      if (typeof text !== 'string' || value === undefined) {
        const hint = typeof text === 'string' ? quantityHint(text) : '';
        p.add(at, `${subject(q)} is not a Kubernetes quantity; write a number with an optional suffix, e.g. "500m", "2", "128Mi" or "1Gi"${hint}`);
      } else if (value < 0) {
        p.add(at, `${show(q)} must not be negative`);
      } else if (!bad) {
        out[side][name] = text;
        values[side]![name] = value;
      }
    }
  }
  for (const [name, request] of Object.entries(values['requests']!)) {
    const limit = values['limits']![name];
    if (limit !== undefined && request > limit) {
      p.add(`resources.requests.${name}`, `${show(out.requests[name])} is more than its limit ${show(out.limits[name])} (resources.limits.${name}); a request may not exceed its limit`);
    }
  }
  return p.count === before ? out : undefined;
}

function checkNodeSelector(p: Problems, raw: unknown): Record<string, string> | undefined {
  const obj = p.object(raw, 'node_selector', 'an object of node label → value, e.g. {"kubernetes.io/arch": "amd64"}');
  if (!obj) return undefined;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(obj)) {
    const at = fieldPath('node_selector', key);
    const badKey = labelKeyProblem(key);
    if (badKey) p.add(at, `${show(key)} is not a label key: ${badKey}`);
    if (typeof value !== 'string') {
      p.add(at, `${subject(value)} must be a string (a label value)${typeof value === 'number' || typeof value === 'boolean' ? `; write "${String(value)}" in quotes` : ''}`);
      continue;
    }
    const badValue = labelValueProblem(value);
    if (badValue) p.add(at, `${show(value)} is not a label value: ${badValue}`);
    else if (!badKey) out[key] = value;
  }
  return out;
}

function checkTolerations(p: Problems, raw: unknown): Toleration[] | undefined {
  if (!Array.isArray(raw)) {
    p.add('tolerations', `${subject(raw)} must be an array, e.g. [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}]`);
    return undefined;
  }
  const out: Toleration[] = [];
  raw.forEach((item, i) => {
    const t = checkToleration(p, item, itemPath('tolerations', i));
    if (t) out.push(t);
  });
  return out.length === raw.length ? out : undefined;
}

function oneOf<T extends string>(p: Problems, obj: JsonObject, key: string, at: string, allowed: readonly T[], what: string): T | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  const hint = typeof v === 'string' ? didYouMean(v, allowed) : '';
  p.add(fieldPath(at, key), `${subject(v)} is not one of ${allowed.map((a) => `"${a}"`).join(', ')}${what}${hint}`);
  return undefined;
}

function checkToleration(p: Problems, raw: unknown, at: string): Toleration | undefined {
  const obj = p.object(raw, at, 'an object such as {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}');
  if (!obj) return undefined;
  knownFields(p, obj, at, TOLERATION_FIELDS);
  const before = p.count;
  const key = p.string(obj, 'key', at);
  if (key !== undefined && key !== '') {
    const bad = labelKeyProblem(key);
    if (bad) p.add(fieldPath(at, 'key'), `${show(key)} is not a taint key: ${bad}`);
  }
  const operator = p.has(obj, 'operator') ? oneOf(p, obj, 'operator', at, TOLERATION_OPERATORS, '') : 'Equal';
  const value = p.string(obj, 'value', at);
  if (value !== undefined) {
    const bad = labelValueProblem(value);
    if (bad) p.add(fieldPath(at, 'value'), `${show(value)} is not a taint value: ${bad}`);
  }
  const effect = p.has(obj, 'effect') && obj.effect !== '' ? oneOf(p, obj, 'effect', at, TAINT_EFFECTS, ' (or leave it out for every effect)') : undefined;
  const seconds = p.integer(obj, 'toleration_seconds', at, Number.MIN_SAFE_INTEGER, 'a whole number of seconds');
  if (operator === 'Exists' && value !== undefined && value !== '') {
    p.add(fieldPath(at, 'value'), `must be empty with operator "Exists" (which tolerates every value of the key); use operator "Equal" to match ${show(value)}`);
  }
  if ((key === undefined || key === '') && operator === 'Equal') {
    p.add(fieldPath(at, 'operator'), 'must be "Exists" when there is no key (a toleration of every taint); give a key to match one with "Equal"');
  }
  if (seconds !== undefined && obj.effect !== 'NoExecute') {
    p.add(fieldPath(at, 'toleration_seconds'), 'goes only with effect "NoExecute": it is how long the pod stays on a node after such a taint appears');
  }
  if (p.count > before || operator === undefined) return undefined;
  const t: Toleration = { operator };
  if (key) t.key = key;
  if (value) t.value = value;
  if (effect) t.effect = effect;
  if (seconds !== undefined) t.toleration_seconds = seconds;
  return t;
}

function checkSecurityContext(p: Problems, raw: unknown): TaskSecurityContext | undefined {
  const at = 'security_context';
  const obj = p.object(raw, at, 'an object such as {"run_as_user": 1000, "read_only_root_filesystem": true}');
  if (!obj) return undefined;
  knownFields(p, obj, at, SECURITY_FIELDS);
  const before = p.count;
  const sc: TaskSecurityContext = {};
  for (const k of ['run_as_user', 'run_as_group', 'fs_group'] as const) {
    const v = p.integer(obj, k, at, 0, 'a numeric id (0 or more)');
    if (v !== undefined && v > MAX_ID) p.add(fieldPath(at, k), `${v} must be at most ${MAX_ID}`);
    else if (v !== undefined) sc[k] = v;
  }
  for (const k of ['run_as_non_root', 'read_only_root_filesystem', 'allow_privilege_escalation', 'privileged'] as const) {
    const v = p.bool(obj, k, at);
    if (v !== undefined) sc[k] = v;
  }
  if (sc.run_as_user === 0 && sc.run_as_non_root !== false) {
    p.add(fieldPath(at, 'run_as_user'), '0 is root, which run_as_non_root (true unless the definition says false) refuses; use a non-zero uid, or set "run_as_non_root": false (a namespace enforcing the restricted Pod Security Standard will then refuse the pod)');
  }
  if (sc.privileged === true && sc.allow_privilege_escalation !== true) {
    p.add(fieldPath(at, 'privileged'), 'true needs "allow_privilege_escalation": true as well (it is false unless the definition says otherwise, and Kubernetes refuses the two together)');
  }
  if (p.has(obj, 'capabilities')) {
    const caps = checkCapabilities(p, obj.capabilities, fieldPath(at, 'capabilities'));
    if (caps) sc.capabilities = caps;
  }
  if (p.has(obj, 'seccomp_profile')) {
    const profile = checkSeccomp(p, obj.seccomp_profile, fieldPath(at, 'seccomp_profile'));
    if (profile) sc.seccomp_profile = profile;
  }
  return p.count === before ? sc : undefined;
}

function checkCapabilities(p: Problems, raw: unknown, at: string): TaskSecurityContext['capabilities'] {
  const obj = p.object(raw, at, 'an object such as {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}');
  if (!obj) return undefined;
  knownFields(p, obj, at, CAPABILITY_FIELDS);
  const out: NonNullable<TaskSecurityContext['capabilities']> = {};
  for (const side of CAPABILITY_FIELDS) {
    const list = p.stringArray(obj, side, at, '["NET_BIND_SERVICE"]');
    if (list === undefined) continue;
    list.forEach((name, i) => {
      const path = itemPath(fieldPath(at, side), i);
      if (/^CAP_[A-Z0-9_]+$/.test(name)) p.add(path, `${show(name)}: write it without "CAP_", as Kubernetes does: "${name.slice(4)}"`);
      else if (!/^[A-Z][A-Z0-9_]*$/.test(name)) p.add(path, `${show(name)} is not a capability name: upper-case, as in "NET_BIND_SERVICE" or "ALL"${/^[a-z_]+$/.test(name) ? ` (did you mean "${name.toUpperCase()}"?)` : ''}`);
    });
    out[side] = list;
  }
  return out;
}

function checkSeccomp(p: Problems, raw: unknown, at: string): TaskSecurityContext['seccomp_profile'] {
  if (!isObject(raw)) {
    p.add(at, `${subject(raw)} must be an object such as {"type": "RuntimeDefault"} or {"type": "Localhost", "localhost_profile": "profiles/task.json"}`);
    return undefined;
  }
  knownFields(p, raw, at, SECCOMP_FIELDS);
  if (!p.has(raw, 'type')) {
    p.add(fieldPath(at, 'type'), `missing; one of ${SECCOMP_TYPES.map((t) => `"${t}"`).join(', ')}`);
    return undefined;
  }
  const type = oneOf(p, raw, 'type', at, SECCOMP_TYPES, '');
  const profile = p.string(raw, 'localhost_profile', at, { nonEmpty: true });
  if (type === 'Localhost' && profile === undefined && !p.has(raw, 'localhost_profile')) {
    p.add(fieldPath(at, 'localhost_profile'), 'missing; type "Localhost" needs the profile\'s path, relative to the kubelet\'s seccomp folder, e.g. "profiles/task.json"');
  }
  if (type !== undefined && type !== 'Localhost' && profile !== undefined) {
    p.add(fieldPath(at, 'localhost_profile'), `goes only with type "Localhost", not ${show(type)}`);
  }
  if (profile !== undefined && (profile.startsWith('/') || profile.split('/').includes('..'))) {
    p.add(fieldPath(at, 'localhost_profile'), `${show(profile)} must be a relative path inside the kubelet's seccomp folder, without ".."`);
  }
  if (type === undefined) return undefined;
  return profile !== undefined ? { type, localhost_profile: profile } : { type };
}
