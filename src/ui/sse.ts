// Server-Sent Events read from text as it arrives, as the HTML standard's event-stream
// interpretation does (lines end in LF, CRLF or CR; `:` starts a comment; `data` lines join with
// LF; an event is dispatched at a blank line; `id` sets the last event id, kept across events).
// The dashboard reads /v1/events with fetch() and this parser instead of EventSource, which
// cannot send an Authorization header. Pure: no DOM, no network.

export interface SseEvent {
  /** `message` when the event named none. */
  event: string;
  data: string;
  /** The last event id after this event (the stream's, not necessarily set by this event). */
  lastEventId: string;
}

export class SseParser {
  /** The last event id seen, to resume from (Last-Event-ID). */
  lastEventId: string;
  private buffer = '';
  private pendingCr = false;
  private event = '';
  private data: string[] = [];
  private idBuffer: string;

  constructor(lastEventId = '') {
    this.lastEventId = lastEventId;
    this.idBuffer = lastEventId;
  }

  /** Feeds more text; returns the events it completed. */
  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let s = this.buffer + text;
    // A CR at the end of the last piece may be the first half of a CRLF.
    if (this.pendingCr && s.startsWith('\n')) s = s.slice(1);
    this.pendingCr = false;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(s.slice(start, i), out);
      if (c === '\r') {
        if (i + 1 === s.length) this.pendingCr = true;
        else if (s[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.buffer = s.slice(start);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      this.dispatch(out);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.idBuffer = value;
        break;
      default:
        // `retry` and unknown fields: the dashboard keeps its own reconnect delays.
        break;
    }
  }

  private dispatch(out: SseEvent[]): void {
    this.lastEventId = this.idBuffer;
    if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n'), lastEventId: this.lastEventId });
    this.event = '';
    this.data = [];
  }
}

/** Splits text arriving in pieces into whole lines (LF-terminated), for NDJSON. */
export class LineSplitter {
  private rest = '';

  push(text: string): string[] {
    const parts = (this.rest + text).split('\n');
    this.rest = parts.pop() ?? '';
    return parts;
  }

  /** What is left after the last newline (at the end of the stream). */
  end(): string[] {
    const rest = this.rest;
    this.rest = '';
    return rest === '' ? [] : [rest];
  }
}
