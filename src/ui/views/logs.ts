// The log pane: the execution's output followed live (NDJSON from /logs?follow=1), kept within
// a line cap (the first and the last lines, a marker between), scrolled along while the reader
// is at the bottom, and resumed from the last whole chunk if the stream is cut before the
// execution ended. Download reads the whole log again and saves it as text.

import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, hasEnded, textPieces, type Api } from '../api.js';
import { sleep } from '../live.js';
import { droppedMarker, LineCap, LineJoiner, lineText, type LogLine } from '../logcap.js';
import { LineSplitter } from '../sse.js';
import { html, useSession } from './common.js';

/** Lines the pane keeps: the first half and the last half. */
export const PANE_LINES = 2000;

interface WireLine {
  executor: string;
  executor_id: string;
  stream: string;
  line: string;
  offset: number;
  /** The chunk ended without this line's newline: it goes on in the next line of its executor and stream. */
  partial?: boolean;
  error?: { message: string };
}

function toLine(w: WireLine): LogLine {
  return { executor: w.executor, executorId: w.executor_id, stream: w.stream, line: w.line, offset: w.offset };
}

/** Follows the log into `cap` until the execution has ended; `changed` after each piece. */
async function follow(api: Api, id: string, cap: LineCap, ended: () => boolean, changed: (note: string) => void, signal: AbortSignal): Promise<void> {
  // The offset of the last chunk whose lines are all here, and of the chunk being read.
  let complete = 0;
  let current = 0;
  const joiner = new LineJoiner();
  while (!signal.aborted) {
    try {
      const res = await api.open('GET', `/v1/executions/${id}/logs?follow=1${complete ? `&offset=${complete}` : ''}`, { signal });
      const lines = new LineSplitter();
      for await (const piece of textPieces(res)) {
        for (const text of lines.push(piece)) {
          const w = JSON.parse(text) as WireLine;
          if (w.error) throw new Error(w.error.message);
          if (w.offset !== current) {
            complete = current;
            current = w.offset;
          }
          const l = joiner.take(toLine(w), w.partial === true);
          if (l) cap.push(l);
        }
        changed('');
      }
      // The stream ends once the execution has ended and its last output was sent.
      complete = current;
      if (ended()) return;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && (err.status === 403 || err.status === 404 || err.status === 401)) {
        changed(err.message);
        return;
      }
      changed(`the log stream was cut (${err instanceof Error ? err.message : String(err)}); resuming`);
      // The chunk being read may be cut short: its lines come again from `complete` on.
      joiner.dropChunk(current);
      cap.dropChunk(current);
      current = complete;
    }
    await sleep(1000, signal);
  }
}

/** Saves the whole log as a text file. */
async function download(api: Api, id: string, job: string, prefix: boolean): Promise<void> {
  const res = await api.open('GET', `/v1/executions/${id}/logs`);
  const out: Array<LogLine | string> = [];
  const lines = new LineSplitter();
  const joiner = new LineJoiner();
  const add = (text: string) => {
    const w = JSON.parse(text) as WireLine;
    const l = w.error ? `[grid: ${w.error.message}]` : joiner.take(toLine(w), w.partial === true);
    if (l) out.push(l);
  };
  for await (const piece of textPieces(res)) lines.push(piece).forEach(add);
  lines.end().forEach(add);
  const text = out.map((l) => `${typeof l === 'string' ? l : lineText(l, prefix)}\n`).join('');
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${job}-${id}.log`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function LogPane({ id, job, state, executors }: { id: string; job: string; state: string; executors: number }) {
  const { api } = useSession();
  const cap = useRef(new LineCap(PANE_LINES));
  const [, setVersion] = useState(0);
  const [note, setNote] = useState('');
  const [downloadError, setDownloadError] = useState('');
  const pane = useRef<HTMLPreElement>(null);
  const atBottom = useRef(true);
  const stateRef = useRef(state);
  stateRef.current = state;

  useEffect(() => {
    cap.current = new LineCap(PANE_LINES);
    const abort = new AbortController();
    let frame = 0;
    const changed = (n: string) => {
      setNote(n);
      // One render a frame however fast lines come.
      if (!frame) frame = requestAnimationFrame(() => ((frame = 0), setVersion((v) => v + 1)));
    };
    void follow(api, id, cap.current, () => hasEnded(stateRef.current), changed, abort.signal);
    return () => {
      abort.abort();
      cancelAnimationFrame(frame);
    };
  }, [api, id]);

  useEffect(() => {
    if (atBottom.current && pane.current) pane.current.scrollTop = pane.current.scrollHeight;
  });

  const onScroll = () => {
    const p = pane.current;
    if (p) atBottom.current = p.scrollHeight - p.scrollTop - p.clientHeight < 24;
  };
  const prefix = executors > 1;
  const { head, dropped, tail } = cap.current.view();
  const line = (l: LogLine, i: number) => html`<div class=${`line ${l.stream}`} key=${i}>${lineText(l, prefix)}</div>`;
  return html`
    <section class="logs">
      <div class="logs-head">
        <h2>Log</h2>
        <span class="note">${cap.current.total} ${cap.current.total === 1 ? 'line' : 'lines'}${dropped > 0 ? ` (the first ${head.length} and the last ${tail.length} shown)` : ''}${hasEnded(state) ? '' : ', following'}</span>
        <button id="download" onClick=${() => download(api, id, job, prefix).then(() => setDownloadError(''), (e: Error) => setDownloadError(e.message))}>Download</button>
      </div>
      ${note && html`<p class="note" id="log-note">${note}</p>`}
      ${downloadError && html`<p class="error">${downloadError}</p>`}
      <pre id="log" ref=${pane} onScroll=${onScroll}>${head.map(line)}${dropped > 0 && html`<div class="line marker" id="log-marker">${droppedMarker(dropped, cap.current)}</div>`}${tail.map((l, i) => line(l, head.length + 1 + i))}</pre>
    </section>
  `;
}
