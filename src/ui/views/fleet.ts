// Fleet: every executor with its state, groups, runners, how long ago its last heartbeat was,
// and how many tasks it is running, all from the events feed. The age ticks with a local clock
// from the last heartbeat's time.

import { ago, html, StateBadge, useLive, useNow } from './common.js';

export function FleetPage() {
  const live = useLive();
  const now = useNow(1000);
  const running = live.runningByExecutor();
  const executors = [...live.executors.values()].sort((a, b) => a.name.localeCompare(b.name));
  const byState = new Map<string, number>();
  for (const e of executors) byState.set(e.state, (byState.get(e.state) ?? 0) + 1);
  return html`
    <section>
      <h1>Fleet</h1>
      <p class="summary">
        ${executors.length} ${executors.length === 1 ? 'executor' : 'executors'}${[...byState].map(([s, n]) => html` · <span>${n} ${s}</span>`)}
      </p>
      <table class="grid-table" id="fleet">
        <thead>
          <tr><th>Name</th><th>State</th><th>Groups</th><th>Runners</th><th>Last heartbeat</th><th class="num">Running</th><th>Version</th></tr>
        </thead>
        <tbody>
          ${executors.length === 0 && html`<tr><td colspan="7" class="empty">No executors have registered yet.</td></tr>`}
          ${executors.map(
            (e) => html`
              <tr key=${e.id} data-executor=${e.name}>
                <td title=${e.id}>${e.name}</td>
                <td data-field="state"><${StateBadge} state=${e.state} /></td>
                <td>${e.groups.join(', ') || '-'}</td>
                <td>${e.runners.join(', ')}</td>
                <td data-field="heartbeat" title=${e.lastSeenAtMs ? new Date(e.lastSeenAtMs).toISOString() : ''}>${ago(e.lastSeenAtMs, now)}</td>
                <td class="num" data-field="running">${running.get(e.id) ?? 0}</td>
                <td>${e.version || '-'}</td>
              </tr>
            `,
          )}
        </tbody>
      </table>
    </section>
  `;
}
