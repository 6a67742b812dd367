// Kubernetes resource quantities ("500m", "2", "128Mi", "1e3") and the names of Kubernetes
// labels and resources, checked the way the API server checks them, so a definition that would
// be refused when its Job is created is refused when the definition is.

const QUANTITY_RE = /^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const SUFFIX: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The quantity's value (in its resource's base unit: cores, bytes), or undefined if it is none. */
export function parseQuantity(text: string): number | undefined {
  const m = QUANTITY_RE.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix]!;
  const v = n * scale;
  return Number.isFinite(v) ? v : undefined;
}

/** "1GB" → "1G" or "1Gi": what an operator who wrote a unit Kubernetes does not know meant. */
export function quantityHint(text: string): string {
  const m = /^([+-]?[\d.]+)\s*([A-Za-z]+)$/.exec(text.trim());
  if (!m) return '';
  const unit = m[2]!.toUpperCase().replace(/B$/, '').replace(/I$/, '');
  const decimal = { K: 'k', M: 'M', G: 'G', T: 'T', P: 'P', E: 'E' }[unit];
  if (!decimal) return '';
  const binary = `${unit === 'K' ? 'K' : unit}i`;
  return ` (did you mean "${m[1]}${decimal}" or "${m[1]}${binary}"?)`;
}

const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** What is wrong with a label key (`[prefix/]name`), or undefined when it is one. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix))) {
    return `its prefix ${JSON.stringify(prefix)} must be a DNS subdomain such as "example.com"`;
  }
  if (name.length === 0 || name.length > 63 || !NAME_RE.test(name)) {
    return 'a label key is an optional DNS-subdomain prefix and "/", then a name of at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit, e.g. "kubernetes.io/arch" or "disktype"';
  }
  return undefined;
}

/** What is wrong with a label value, or undefined when it is one ("" is). */
export function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !NAME_RE.test(value)) {
    return 'a label value is at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit (or empty)';
  }
  return undefined;
}

export const NATIVE_RESOURCES = ['cpu', 'memory', 'ephemeral-storage'] as const;

/**
 * What is wrong with a container resource name, or undefined: cpu, memory, ephemeral-storage,
 * hugepages-<size>, or an extended resource named with its domain (nvidia.com/gpu).
 */
export function resourceNameProblem(name: string): string | undefined {
  if ((NATIVE_RESOURCES as readonly string[]).includes(name)) return undefined;
  if (name.startsWith('hugepages-')) {
    const size = parseQuantity(name.slice('hugepages-'.length));
    return size !== undefined && size > 0 ? undefined : `${JSON.stringify(name)}: the size of hugepages-<size> must be a quantity such as 2Mi or 1Gi`;
  }
  // Extended resources are domain-qualified; the kubernetes.io domain is Kubernetes' own.
  if (name.includes('/') && !/(^|\.)kubernetes\.io\//.test(name) && labelKeyProblem(name) === undefined) return undefined;
  return `${JSON.stringify(name)} is not a resource: use cpu, memory, ephemeral-storage, hugepages-<size>, or an extended resource named with its domain, e.g. "nvidia.com/gpu"`;
}
