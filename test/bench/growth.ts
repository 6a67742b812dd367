// Growth series of `make bench`: a figure measured at several scales (fan-out time at 100, 1,000
// and 10,000 executors, …), its cost per unit at each, and a straight line cost = a + b·n fitted
// through the points, which says whether the fixed term (a) or the per-unit term (b·n) dominates
// at each scale measured.

export interface GrowthPoint {
  /** The scale: executors, stored executions… */
  n: number;
  value: number;
  /** What the point cost per unit (value ÷ n in the series' per-unit terms, or a measured cost). */
  perUnit: number;
  detail: string;
}

export interface GrowthDefinition {
  key: string;
  title: string;
  /** What n counts, plural ("executors"). */
  nUnit: string;
  valueUnit: string;
  perUnitLabel: string;
  /** What a and b stand for in this series, e.g. ['fixed per execution', 'per executor']. */
  terms: [fixed: string, perUnit: string];
  /** The scales this run measures. */
  used: number[];
  /** How they differ from the scales asked for (QUICK=1 scales them down), shown after the title. */
  note?: string;
}

export interface Fit {
  a: number;
  b: number;
}

/** Least-squares line through the points (exact through two); undefined with fewer than two scales. */
export function fitLine(points: Array<{ n: number; value: number }>): Fit | undefined {
  const xs = points.map((p) => p.n);
  if (new Set(xs).size < 2) return undefined;
  const mx = xs.reduce((s, x) => s + x, 0) / xs.length;
  const my = points.reduce((s, p) => s + p.value, 0) / points.length;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.n - mx) * (p.value - my);
    sxx += (p.n - mx) ** 2;
  }
  const b = sxy / sxx;
  return { a: my - b * mx, b };
}

const num = (v: number, digits = 3): string => {
  if (!Number.isFinite(v)) return '—';
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 0.001 || abs >= 1e6)) return v.toExponential(2);
  return v.toLocaleString('en-US', { maximumSignificantDigits: digits });
};

/** One sentence per scale: which term of the fit dominates there, and by how much. */
export function dominance(def: GrowthDefinition, fit: Fit, ns: number[]): string {
  const [fixed, perUnit] = def.terms;
  if (fit.b <= 0) {
    return `the fitted per-unit term is ${fit.b === 0 ? 'zero' : 'negative'} (b = ${num(fit.b)} ${def.valueUnit} per ${def.nUnit.replace(/s$/, '')}): within this run's noise the cost does not grow with ${def.nUnit}; the ${fixed} term dominates at every scale measured`;
  }
  if (fit.a <= 0) {
    return `the fitted ${fixed} term is ${fit.a === 0 ? 'zero' : 'below zero'} (a = ${num(fit.a)} ${def.valueUnit}): the ${perUnit} term dominates at every scale measured (cost grows at least linearly)`;
  }
  const cross = fit.a / fit.b;
  const at = ns.map((n) => {
    const share = (fit.b * n) / (fit.a + fit.b * n);
    return `at ${n.toLocaleString('en-US')} the ${share >= 0.5 ? perUnit : fixed} term dominates (${perUnit} ${Math.round(share * 100)} %)`;
  });
  return `${at.join('; ')}; the two are equal at n ≈ ${num(cross, 2)}`;
}

export class Growth {
  private readonly defs = new Map<string, GrowthDefinition>();
  private readonly points = new Map<string, GrowthPoint[]>();

  define(def: GrowthDefinition): void {
    this.defs.set(def.key, def);
    this.points.set(def.key, []);
  }

  point(key: string, p: GrowthPoint): void {
    const list = this.points.get(key);
    if (!list) throw new Error(`no growth series ${key}`);
    list.push(p);
    list.sort((x, y) => x.n - y.n);
  }

  /** The small tables printed after the main one; series without points say so. */
  print(): string {
    const out: string[] = [];
    for (const def of this.defs.values()) {
      const pts = this.points.get(def.key)!;
      out.push(`${def.title} — at ${def.used.map((n) => n.toLocaleString('en-US')).join(', ')} ${def.nUnit}${def.note ? ` (${def.note})` : ''}`);
      if (pts.length === 0) {
        out.push('  no point measured (its scenario did not run or did not finish)', '');
        continue;
      }
      const header = [def.nUnit, def.valueUnit, def.perUnitLabel, 'detail'];
      const body = pts.map((p) => [p.n.toLocaleString('en-US'), num(p.value), num(p.perUnit), p.detail]);
      const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
      const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
      out.push(line(header), '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |', ...body.map(line));
      const missing = def.used.filter((n) => !pts.some((p) => p.n === n));
      if (missing.length) out.push(`  not measured: ${missing.map((n) => n.toLocaleString('en-US')).join(', ')} (did not finish or not reached)`);
      const fit = fitLine(pts);
      if (fit) {
        out.push(`  fit ${def.valueUnit} = a + b·n: a (${def.terms[0]}) = ${num(fit.a)} ${def.valueUnit}, b (${def.terms[1]}) = ${num(fit.b)} ${def.valueUnit} per ${def.nUnit.replace(/s$/, '')}`);
        out.push(`  ${dominance(def, fit, pts.map((p) => p.n))}`);
      } else {
        out.push('  one scale only: no fit');
      }
      out.push('');
    }
    return out.join('\n');
  }

  json(): Record<string, unknown> {
    return Object.fromEntries(
      [...this.defs.values()].map((def) => {
        const pts = this.points.get(def.key)!;
        return [def.key, { ...def, points: pts, fit: fitLine(pts) ?? null }];
      }),
    );
  }
}
