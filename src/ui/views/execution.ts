// One execution: its overall state and arguments, one row per executor that changes as the
// events feed says, Cancel while it runs, and the log pane.

import { useEffect, useState } from 'preact/hooks';
import { hasEnded, type ExecutionJson } from '../api.js';
import { LogPane } from './logs.js';
import { at, ErrorNote, hrefOf, html, StateBadge, took, useLive, useNow, useSession } from './common.js';

export function ExecutionPage({ id }: { id: string }) {
  const { api } = useSession();
  const live = useLive();
  const now = useNow(1000);
  const [read, setRead] = useState<ExecutionJson | undefined>();
  const [error, setError] = useState<unknown>();
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState<unknown>();

  useEffect(() => {
    const abort = new AbortController();
    api.call<ExecutionJson>('GET', `/v1/executions/${id}`, undefined, abort.signal).then(setRead, (e: unknown) => abort.signal.aborted || setError(e));
    return () => abort.abort();
  }, [api, id, live.resets]);

  // Whichever is newer: what was read, or what the feed said since.
  const fromFeed = live.executions.get(id);
  const x = fromFeed && (!read || fromFeed.updatedAtMs >= read.updatedAtMs) ? fromFeed : read;
  if (!x) return html`<section><h1 class="mono">${id}</h1>${error ? html`<${ErrorNote} error=${error} />` : html`<p class="note">Loading…</p>`}</section>`;

  const cancel = () => {
    setCancelling(true);
    api.call<ExecutionJson>('POST', `/v1/executions/${id}/cancel`, { reason: 'from the dashboard' }).then(
      (after) => {
        setRead(after);
        setCancelError(undefined);
      },
      (e: unknown) => setCancelError(e),
    ).finally(() => setCancelling(false));
  };
  const ended = hasEnded(x.state);
  const args = Object.entries(x.args);
  return html`
    <section>
      <div class="title" id="execution">
        <h1>${x.job} <span class="mono dim">${x.id}</span></h1>
        <span data-field="state"><${StateBadge} state=${x.state} /></span>
        ${!ended && html`<button id="cancel" class="danger" disabled=${cancelling} onClick=${cancel}>${cancelling ? 'Cancelling…' : 'Cancel'}</button>`}
      </div>
      <${ErrorNote} error=${cancelError} />
      <dl class="facts">
        <dt>Job</dt><dd><a href=${hrefOf('/executions', { job: x.job })}>${x.job}</a> (version ${x.jobVersion})</dd>
        <dt>Target</dt><dd>${x.target}</dd>
        <dt>Requester</dt><dd>${x.requester}</dd>
        <dt>Created</dt><dd>${at(x.createdAtMs)}</dd>
        <dt>Duration</dt><dd>${took(x.createdAtMs, x.finishedAtMs, now)}</dd>
        ${x.reason && html`<dt>Reason</dt><dd>${x.reason}</dd>`}
        <dt>Args</dt><dd>${args.length ? args.map(([k, v]) => `${k}=${v}`).join(', ') : '-'}</dd>
      </dl>
      <table class="grid-table" id="workers">
        <thead>
          <tr><th>Executor</th><th>State</th><th class="num">Exit</th><th class="num">Attempts</th><th>Started</th><th>Duration</th><th>Reason</th></tr>
        </thead>
        <tbody>
          ${x.tasks.length === 0 && html`<tr><td colspan="7" class="empty">No tasks.</td></tr>`}
          ${x.tasks.map(
            (t) => html`
              <tr key=${t.key} data-worker=${t.executorName || t.key}>
                <td>${t.executorName || t.executorId || `(${t.key})`}</td>
                <td data-field="state"><${StateBadge} state=${t.state} /></td>
                <td class="num">${t.exitCode ?? '-'}</td>
                <td class="num">${t.attempts}</td>
                <td>${at(t.startedAtMs)}</td>
                <td>${took(t.startedAtMs, t.finishedAtMs, now)}</td>
                <td>${t.reason || '-'}</td>
              </tr>
            `,
          )}
        </tbody>
      </table>
      <${LogPane} id=${x.id} job=${x.job} state=${x.state} executors=${x.tasks.length} />
    </section>
  `;
}
