// The dashboard: asks for an API token, keeps it for this tab only (sessionStorage; never a
// cookie), opens the one events stream, and shows the page the location's hash names.

import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, ApiError } from './api.js';
import { Live } from './live.js';
import { html, parseHash, SessionContext, useLive, type Session } from './views/common.js';
import { ExecutionPage } from './views/execution.js';
import { ExecutionsPage } from './views/executions.js';
import { FleetPage } from './views/fleet.js';
import { JobsPage, RunPage } from './views/jobs.js';

const TOKEN_KEY = 'grid.token';

function Login({ onToken, message }: { onToken: (token: string) => void; message: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(message);
  const [checking, setChecking] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setChecking(true);
    try {
      // Any role may list executors: a token that can is one the page can work with.
      await new Api(token.trim()).call('GET', '/v1/executors');
      onToken(token.trim());
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'That token was not accepted.' : err instanceof Error ? err.message : String(err));
    } finally {
      setChecking(false);
    }
  };
  return html`
    <main class="login">
      <form id="login" onSubmit=${submit}>
        <h1>GRID</h1>
        <label for="token">API token</label>
        <input id="token" type="password" autocomplete="current-password" value=${token} onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} autofocus />
        <p class="help">A token from the controller's config (<code>make dev</code> writes one to <code>.grid/client.json</code>). It stays in this tab only.</p>
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button type="submit" class="primary" disabled=${checking || !token.trim()}>Sign in</button>
      </form>
    </main>
  `;
}

function Connection() {
  const live = useLive();
  const label = live.connection === 'live' ? 'live' : live.connection === 'connecting' ? 'connecting…' : 'reconnecting…';
  return html`<span class=${`conn ${live.connection}`} id="connection" title=${live.problem}>${label}</span>`;
}

function Page({ hash }: { hash: string }) {
  const { path, query } = parseHash(hash);
  let m: RegExpExecArray | null;
  if (path === '/fleet') return html`<${FleetPage} />`;
  if (path === '/executions') return html`<${ExecutionsPage} query=${query} />`;
  if ((m = /^\/executions\/([^/]+)$/.exec(path))) return html`<${ExecutionPage} key=${m[1]} id=${m[1]} />`;
  if (path === '/jobs') return html`<${JobsPage} />`;
  if ((m = /^\/jobs\/([^/]+)\/run$/.exec(path))) return html`<${RunPage} key=${m[1]} name=${decodeURIComponent(m[1]!)} />`;
  return html`<section><h1>Not found</h1><p>Nothing at ${path}. <a href="#/fleet">Fleet</a></p></section>`;
}

function App() {
  const [token, setToken] = useState(() => sessionStorage.getItem(TOKEN_KEY) ?? '');
  const [message, setMessage] = useState('');
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);

  const signOut = (why = '') => {
    sessionStorage.removeItem(TOKEN_KEY);
    setMessage(why);
    setToken('');
  };
  const session = useMemo<Session | undefined>(() => {
    if (!token) return undefined;
    const api = new Api(token);
    api.onUnauthenticated = (m) => signOut(`Signed out: ${m}`);
    return { api, live: new Live(api), signOut: () => signOut() };
  }, [token]);
  useEffect(() => {
    if (!session) return;
    session.live.start();
    return () => session.live.stop();
  }, [session]);

  if (!session) {
    return html`<${Login} message=${message} onToken=${(t: string) => {
      sessionStorage.setItem(TOKEN_KEY, t);
      setMessage('');
      setToken(t);
    }} />`;
  }
  const section = parseHash(hash).path.split('/')[1];
  const tab = (path: string, label: string) => html`<a href=${`#/${path}`} class=${section === path ? 'on' : ''}>${label}</a>`;
  return html`
    <${SessionContext.Provider} value=${session}>
      <header>
        <span class="brand">GRID</span>
        <nav>${tab('fleet', 'Fleet')}${tab('executions', 'Executions')}${tab('jobs', 'Jobs')}</nav>
        <${Connection} />
        <button class="link" id="sign-out" onClick=${() => session.signOut()}>Sign out</button>
      </header>
      <main><${Page} hash=${hash} /></main>
    <//>
  `;
}

render(html`<${App} />`, document.getElementById('app')!);
