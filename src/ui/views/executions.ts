// Executions: filters by job and state, pages read from the controller (newest first, by
// cursor), how many executions are in each state, and rows that change as the events feed says:
// a row on the page takes each change, a new execution that fits the filters comes in on top of
// the first page, and the counts are read again after changes.

import { useEffect, useRef, useState } from 'preact/hooks';
import { EXECUTION_STATES, type ExecutionJson, type ExecutionPage, type StateCountsJson, type StoredJobJson } from '../api.js';
import { at, ErrorNote, hrefOf, html, StateBadge, took, useNow, useSession } from './common.js';

/** Rows a page, unless the location says (`limit=`). */
const PAGE = 20;
/** Counts are read again this long after the last change seen (changes come in bursts). */
const COUNTS_AFTER_MS = 700;

function fits(x: ExecutionJson, job: string, state: string): boolean {
  return (!job || x.job === job) && (!state || x.state === state);
}

/** "1/1 ok", "0/3 ok, 2 running, 1 pending", as grid-cli's summary. */
export function taskSummary(x: ExecutionJson): string {
  if (!x.tasks.length) return '-';
  const n = (states: string[]) => x.tasks.filter((t) => states.includes(t.state)).length;
  const parts = [`${n(['SUCCEEDED'])}/${x.tasks.length} ok`];
  const more: Array<[string, number]> = [
    ['failed', n(['FAILED', 'TIMED_OUT', 'LOST', 'UNKNOWN'])],
    ['cancelled', n(['CANCELLED'])],
    ['skipped', n(['SKIPPED'])],
    ['running', n(['RUNNING'])],
    ['pending', n(['PENDING'])],
  ];
  for (const [word, count] of more) if (count) parts.push(`${count} ${word}`);
  return parts.join(', ');
}

export function ExecutionsPage({ query }: { query: URLSearchParams }) {
  const { api, live } = useSession();
  const job = query.get('job') ?? '';
  const state = query.get('state') ?? '';
  const cursor = query.get('cursor') ?? '';
  const limit = Math.min(Math.max(Number(query.get('limit')) || PAGE, 1), 1000);
  const now = useNow(1000);
  const [page, setPage] = useState<ExecutionPage | undefined>();
  const [counts, setCounts] = useState<StateCountsJson | undefined>();
  const [jobs, setJobs] = useState<string[]>([]);
  const [error, setError] = useState<unknown>();
  const [resets, setResets] = useState(live.resets);
  /** Cursors of the pages before this one, for "Newer". */
  const earlier = useRef<string[]>([]);

  useEffect(() => live.subscribe(() => setResets(live.resets)), [live]);

  useEffect(() => {
    api.call<{ jobs: StoredJobJson[] }>('GET', '/v1/jobs').then((r) => setJobs(r.jobs.map((j) => j.definition.name).sort()), () => undefined);
  }, [api]);

  // The page: read when the filters or the cursor change, and after a reset of the feed.
  useEffect(() => {
    const abort = new AbortController();
    const q = new URLSearchParams({ limit: String(limit) });
    if (job) q.set('job', job);
    if (state) q.set('state', state);
    if (cursor) q.set('cursor', cursor);
    api.call<ExecutionPage>('GET', `/v1/executions?${q}`, undefined, abort.signal).then(
      (p) => {
        setPage(p);
        setError(undefined);
      },
      (err: unknown) => abort.signal.aborted || setError(err),
    );
    return () => abort.abort();
  }, [api, job, state, cursor, limit, resets]);

  // The counts: read now, and again shortly after changes to executions of this job.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = () => {
      api.call<StateCountsJson>('GET', `/v1/executions/counts${job ? `?job=${encodeURIComponent(job)}` : ''}`).then(setCounts, () => undefined);
    };
    read();
    const off = live.onExecution((x) => {
      if (job && x.job !== job) return;
      clearTimeout(timer);
      timer = setTimeout(read, COUNTS_AFTER_MS);
    });
    return () => {
      off();
      clearTimeout(timer);
    };
  }, [api, live, job, resets]);

  // Rows take each change; new executions come in on top of the first page.
  useEffect(
    () =>
      live.onExecution((x) =>
        setPage((p) => {
          if (!p) return p;
          const i = p.executions.findIndex((r) => r.id === x.id);
          if (i >= 0) {
            if (p.executions[i]!.updatedAtMs > x.updatedAtMs) return p;
            const executions = [...p.executions];
            executions[i] = x;
            return { ...p, executions };
          }
          if (cursor || !fits(x, job, state) || (p.executions[0] && p.executions[0].id > x.id)) return p;
          const executions = [x, ...p.executions];
          if (executions.length <= limit) return { ...p, executions };
          executions.length = limit;
          return { ...p, executions, next_cursor: executions[limit - 1]!.id };
        }),
      ),
    [live, job, state, cursor, limit],
  );

  const go = (q: Record<string, string | undefined>) => {
    location.hash = hrefOf('/executions', { job, state, limit: query.get('limit') ?? undefined, ...q });
  };
  const filter = (q: Record<string, string | undefined>) => {
    earlier.current = [];
    go({ ...q, cursor: undefined });
  };
  const older = () => {
    earlier.current.push(cursor);
    go({ cursor: page?.next_cursor });
  };
  const newer = () => go({ cursor: earlier.current.pop() || undefined });

  const total = counts ? Object.values(counts.counts).reduce((a, b) => a + b, 0) : undefined;
  const countOf = (s: string) => (counts ? `${counts.counts[s] ?? 0}${counts.at_least.includes(s) ? '+' : ''}` : '…');
  return html`
    <section>
      <h1>Executions</h1>
      <div class="filters">
        <label>Job
          <select id="filter-job" value=${job} onChange=${(e: Event) => filter({ job: (e.target as HTMLSelectElement).value || undefined })}>
            <option value="">all jobs</option>
            ${[...new Set([...jobs, ...(job ? [job] : [])])].map((j) => html`<option value=${j}>${j}</option>`)}
          </select>
        </label>
        <div class="state-filter" role="group" aria-label="state">
          <button class=${state ? 'chip' : 'chip on'} data-count-state="" onClick=${() => filter({ state: undefined })}>
            all <span class="count">${total ?? '…'}${counts?.at_least.length ? '+' : ''}</span>
          </button>
          ${EXECUTION_STATES.map(
            (s) => html`
              <button class=${state === s ? 'chip on' : 'chip'} data-count-state=${s} onClick=${() => filter({ state: s })}>
                ${s} <span class="count">${countOf(s)}</span>
              </button>
            `,
          )}
        </div>
      </div>
      <${ErrorNote} error=${error} />
      <table class="grid-table" id="executions">
        <thead>
          <tr><th>Execution</th><th>Job</th><th>State</th><th>Target</th><th>Tasks</th><th>Requester</th><th>Created</th><th>Duration</th></tr>
        </thead>
        <tbody>
          ${page && page.executions.length === 0 && html`<tr><td colspan="8" class="empty">No executions${job || state ? ' match these filters' : ' yet'}.</td></tr>`}
          ${page?.executions.map(
            (x) => html`
              <tr key=${x.id} data-execution=${x.id}>
                <td><a href=${hrefOf(`/executions/${x.id}`)} class="mono">${x.id}</a></td>
                <td>${x.job}</td>
                <td data-field="state"><${StateBadge} state=${x.state} /></td>
                <td>${x.target}</td>
                <td>${taskSummary(x)}</td>
                <td>${x.requester}</td>
                <td>${at(x.createdAtMs)}</td>
                <td>${took(x.createdAtMs, x.finishedAtMs, now)}</td>
              </tr>
            `,
          )}
        </tbody>
      </table>
      <div class="pager">
        <button id="newer" onClick=${newer} disabled=${!cursor}>Newer</button>
        <button id="older" onClick=${older} disabled=${!page?.next_cursor}>Older</button>
        ${page && !page.next_cursor && page.pruned_before_ms > 0 &&
        html`<span class="note">Older executions were pruned (kept: ${page.retention}).</span>`}
      </div>
    </section>
  `;
}
