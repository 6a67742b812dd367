// Jobs and the run form. The form is made from the definition's arguments (form.ts); the
// controller validates what is sent, and each problem it names is shown beside its field.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, type ExecutionJson, type StoredJobJson } from '../api.js';
import { executeBody, formFields, placeProblems, type FormField } from '../form.js';
import { ErrorNote, hrefOf, html, useSession } from './common.js';

export function JobsPage() {
  const { api } = useSession();
  const [jobs, setJobs] = useState<StoredJobJson[] | undefined>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    api.call<{ jobs: StoredJobJson[] }>('GET', '/v1/jobs').then((r) => setJobs(r.jobs), setError);
  }, [api]);
  const sorted = [...(jobs ?? [])].sort((a, b) => a.definition.name.localeCompare(b.definition.name));
  return html`
    <section>
      <h1>Jobs</h1>
      <${ErrorNote} error=${error} />
      <table class="grid-table" id="jobs">
        <thead><tr><th>Name</th><th>Runner</th><th class="num">Version</th><th>Description</th><th></th></tr></thead>
        <tbody>
          ${jobs && sorted.length === 0 && html`<tr><td colspan="5" class="empty">No job definitions yet (grid-cli create FILE).</td></tr>`}
          ${sorted.map(
            (j) => html`
              <tr key=${j.definition.name} data-job=${j.definition.name}>
                <td>${j.definition.name}</td>
                <td>${j.definition.runner}</td>
                <td class="num">${j.version}</td>
                <td>${j.definition.description}</td>
                <td><a class="button" href=${hrefOf(`/jobs/${encodeURIComponent(j.definition.name)}/run`)}>Run</a></td>
              </tr>
            `,
          )}
        </tbody>
      </table>
    </section>
  `;
}

const TARGET_PATH = 'target';
const TIMEOUT_PATH = 'timeout_seconds';

function FieldErrors({ messages, id }: { messages: string[] | undefined; id: string }) {
  if (!messages?.length) return null;
  return html`<div class="field-error" id=${id} role="alert">${messages.map((m) => html`<div>${m}</div>`)}</div>`;
}

function Input({ f, value, set, invalid }: { f: FormField; value: string; set: (v: string) => void; invalid: boolean }) {
  const common = { id: `arg-${f.name}`, name: f.name, 'aria-invalid': invalid ? 'true' : undefined, 'aria-describedby': `err-${f.name}` };
  const onInput = (e: Event) => set((e.target as HTMLInputElement).value);
  if (f.kind === 'select') {
    return html`<select ...${common} value=${value} onChange=${onInput}>${f.options!.map((o) => html`<option value=${o.value}>${o.label}</option>`)}</select>`;
  }
  if (f.kind === 'password') {
    return html`<input ...${common} type="password" autocomplete="new-password" value=${value} placeholder=${f.placeholder} onInput=${onInput} />`;
  }
  return html`<input ...${common} type="text" inputmode=${f.kind === 'int' ? 'numeric' : undefined} autocomplete="off" value=${value} placeholder=${f.placeholder} onInput=${onInput} />`;
}

export function RunPage({ name }: { name: string }) {
  const { api } = useSession();
  const [job, setJob] = useState<StoredJobJson | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const [values, setValues] = useState<Record<string, string>>({});
  const [target, setTarget] = useState('');
  const [timeout, setTimeoutValue] = useState('');
  const [problems, setProblems] = useState<ReturnType<typeof placeProblems>>({ byPath: new Map(), general: [] });
  const [sending, setSending] = useState(false);

  useEffect(() => {
    api.call<StoredJobJson>('GET', `/v1/jobs/${encodeURIComponent(name)}`).then(setJob, setLoadError);
  }, [api, name]);
  const fields = useMemo(() => (job ? formFields(job.definition) : []), [job]);
  if (!job) return html`<section><h1>Run ${name}</h1>${loadError ? html`<${ErrorNote} error=${loadError} />` : html`<p class="note">Loading…</p>`}</section>`;

  const paths = [...fields.map((f) => f.path), TARGET_PATH, TIMEOUT_PATH];
  const submit = async (e: Event) => {
    e.preventDefault();
    setSending(true);
    try {
      const body = executeBody(fields, values, { target, timeout });
      const res = await api.call<{ executionId: string; execution?: ExecutionJson }>('POST', `/v1/jobs/${encodeURIComponent(name)}/executions`, body);
      location.hash = hrefOf(`/executions/${res.executionId}`);
    } catch (err) {
      const list = err instanceof ApiError ? (err.problems.length ? err.problems : [{ field: err.field, message: err.message }]) : [{ message: String(err) }];
      setProblems(placeProblems(list, paths));
    } finally {
      setSending(false);
    }
  };
  const def = job.definition;
  return html`
    <section>
      <h1>Run ${def.name}</h1>
      <p class="note">${def.description}</p>
      <form id="run-form" class="run-form" onSubmit=${submit} novalidate>
        ${problems.general.length > 0 && html`<div class="error" id="form-error" role="alert">${problems.general.map((m) => html`<div>${m}</div>`)}</div>`}
        ${fields.length === 0 && html`<p class="note">This job takes no arguments.</p>`}
        ${fields.map((f) => {
          const errs = problems.byPath.get(f.path);
          return html`
            <div class=${errs ? 'field invalid' : 'field'} data-field=${f.name}>
              <label for=${`arg-${f.name}`}>${f.label}${f.required && html`<span class="req" title="required"> *</span>`}
                <span class="type">${f.kind === 'password' ? 'secret' : (def.env_vars.args.find((a) => a.name === f.name)?.type ?? '')}</span></label>
              <${Input} f=${f} value=${values[f.name] ?? f.initial} invalid=${!!errs} set=${(v: string) => setValues({ ...values, [f.name]: v })} />
              ${f.description && html`<div class="help">${f.description}</div>`}
              <${FieldErrors} messages=${errs} id=${`err-${f.name}`} />
            </div>
          `;
        })}
        <div class=${problems.byPath.has(TARGET_PATH) ? 'field invalid' : 'field'} data-field="target">
          <label for="arg-target">Target <span class="type">all, group:G, node:NAME, any, any:G</span></label>
          <input id="arg-target" type="text" value=${target} placeholder=${def.target ? `default: ${def.target}` : 'default: all'} onInput=${(e: Event) => setTarget((e.target as HTMLInputElement).value)} />
          <${FieldErrors} messages=${problems.byPath.get(TARGET_PATH)} id="err-target" />
        </div>
        <div class=${problems.byPath.has(TIMEOUT_PATH) ? 'field invalid' : 'field'} data-field="timeout_seconds">
          <label for="arg-timeout">Timeout <span class="type">seconds</span></label>
          <input id="arg-timeout" type="text" inputmode="numeric" value=${timeout} placeholder=${def.timeout_seconds ? `default: ${def.timeout_seconds}` : "default: the job's"} onInput=${(e: Event) => setTimeoutValue((e.target as HTMLInputElement).value)} />
          <${FieldErrors} messages=${problems.byPath.get(TIMEOUT_PATH)} id="err-timeout_seconds" />
        </div>
        <div class="actions"><button type="submit" id="run" class="primary" disabled=${sending}>${sending ? 'Starting…' : 'Run'}</button></div>
      </form>
    </section>
  `;
}
