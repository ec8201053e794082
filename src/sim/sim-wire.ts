import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RecordedRequest } from './sim-types.js';

/**
 * Bytes on the wire, the way Ollama's Go server writes them: compact JSON with `<`, `>`, `&`,
 * U+2028 and U+2029 escaped; timestamps in RFC 3339 with nanoseconds and trailing zeros dropped;
 * headers held back until the first chunk exists.
 */

/** JSON as Go's json.Marshal writes it (HTML-safe escaping). */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

const WALL_BASE_NS = BigInt(Date.now()) * 1_000_000n;
const HR_BASE = process.hrtime.bigint();

/** Monotonic nanoseconds (for durations). */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Wall-clock time in nanoseconds since the epoch, with sub-millisecond digits from hrtime. */
export function wallNs(): bigint {
  return WALL_BASE_NS + (process.hrtime.bigint() - HR_BASE);
}

function fraction(ns: bigint): string {
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return frac ? '.' + frac : '';
}

/** `created_at`: UTC RFC 3339 with nanoseconds, trailing zeros dropped (`2025-10-26T17:21:21.196249Z`). */
export function createdAt(ns: bigint = wallNs()): string {
  const ms = Number(ns / 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2025-10-26T17:21:21.196Z
  return iso.slice(0, 19) + fraction(ns) + 'Z';
}

/** Local-zone RFC 3339 with nanoseconds (Go's time.Time in the server's zone), e.g. for `modified_at`. */
export function localTime(ms: number, extraNs = 0): string {
  const d = new Date(ms);
  const offMin = -d.getTimezoneOffset();
  const local = new Date(ms + offMin * 60_000);
  const fracNs = BigInt(((Math.floor(ms) % 1000) + 1000) % 1000) * 1_000_000n + BigInt(Math.floor(extraNs) % 1_000_000);
  const sign = offMin >= 0 ? '+' : '-';
  const abs = Math.abs(offMin);
  const zone = offMin === 0 ? 'Z' : `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return local.toISOString().slice(0, 19) + fraction(fracNs) + zone;
}

/** Resolves after `ms` (or on the next turn of the event loop when `ms` ≤ 0); false if `signal` aborted first. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      if (timer !== undefined) clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    if (ms > 0) timer = setTimeout(() => done(true), ms);
    else immediate = setImmediate(() => done(true));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const JSON_CT = 'application/json; charset=utf-8';

/** How errors are rendered for a route: Ollama `{"error":"…"}` or OpenAI `{"error":{message,type,…}}`. */
export type ErrorStyle = 'ollama' | 'openai';

/**
 * One request/response pair. Tracks the recorded request, notices a client that goes away
 * (`signal` aborts and the record is marked `aborted`), and writes responses.
 */
export class Exchange {
  readonly startNs = nowNs();
  readonly controller = new AbortController();
  errorStyle: ErrorStyle = 'ollama';
  private closedByServer = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly record: RecordedRequest | undefined,
  ) {
    res.on('close', () => {
      if (res.writableFinished) return;
      if (!this.closedByServer && record && !record.aborted) {
        record.aborted = true;
        record.abortedAt = Date.now();
      }
      this.controller.abort();
    });
    res.on('finish', () => {
      if (record) record.finishedAt = Date.now();
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get gone(): boolean {
    return this.controller.signal.aborted || this.res.destroyed;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  /** Sends status and headers (they go out with the first body bytes). */
  head(status: number, headers: Record<string, string | number>): void {
    if (this.record) {
      this.record.status = status;
      this.record.firstByteAt = Date.now();
    }
    this.res.writeHead(status, headers);
  }

  /** A complete response with a body (none for HEAD requests). */
  send(status: number, contentType: string | undefined, body: string | Buffer): void {
    if (this.gone) return;
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    const headers: Record<string, string | number> = { 'Content-Length': buf.length };
    if (contentType) headers['Content-Type'] = contentType;
    this.head(status, headers);
    this.res.end(this.req.method === 'HEAD' ? undefined : buf);
  }

  /** `application/json; charset=utf-8` with Go escaping and no trailing newline. */
  json(status: number, value: unknown): void {
    this.send(status, JSON_CT, goJson(value));
  }

  /** An error before the first byte, in the route's style. */
  fail(status: number, message: string): void {
    if (this.errorStyle === 'openai') {
      const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
      this.json(status, { error: { message, type, param: null, code: null } });
    } else {
      this.json(status, { error: message });
    }
  }

  /** Status with an empty body and no Content-Type (Go's c.Status). */
  empty(status: number): void {
    this.send(status, undefined, '');
  }

  /** Writes a chunk, waiting for 'drain' under backpressure; false when the client is gone. */
  async write(chunk: string): Promise<boolean> {
    if (this.gone) return false;
    if (this.res.write(chunk)) return true;
    return new Promise((resolve) => {
      const onDrain = (): void => {
        this.res.off('close', onClose);
        resolve(!this.gone);
      };
      const onClose = (): void => {
        this.res.off('drain', onDrain);
        resolve(false);
      };
      this.res.once('drain', onDrain);
      this.res.once('close', onClose);
    });
  }

  /** Ends the response body. */
  end(): void {
    if (!this.gone) this.res.end();
  }

  /** Marks the coming connection loss as the server's doing (crash/close), not a client abort. */
  serverClosing(): void {
    this.closedByServer = true;
  }

  /** Destroys the connection on purpose (a fault, not a client abort). */
  destroy(): void {
    this.closedByServer = true;
    this.req.socket.destroy();
    this.controller.abort();
  }
}

/**
 * An NDJSON stream (`application/x-ndjson`, no charset): the 200 status and headers go out with
 * the first line. An error before that is a real status with a JSON body; after it, a final
 * `{"error":"…"}` line.
 */
export class NdjsonStream {
  constructor(private readonly ex: Exchange) {}

  get started(): boolean {
    return this.ex.headersSent;
  }

  async line(value: unknown): Promise<boolean> {
    if (this.ex.gone) return false;
    if (!this.ex.headersSent) this.ex.head(200, { 'Content-Type': 'application/x-ndjson' });
    return this.ex.write(goJson(value) + '\n');
  }

  /** An error: a real status if nothing was sent yet, otherwise a final error line. Ends the response. */
  async error(message: string, status = 500): Promise<void> {
    if (!this.started) {
      this.ex.fail(status, message);
      return;
    }
    await this.ex.write(goJson({ error: message }) + '\n');
    this.ex.end();
  }

  end(): void {
    if (!this.ex.headersSent && !this.ex.gone) this.ex.head(200, { 'Content-Type': 'application/x-ndjson' });
    this.ex.end();
  }
}
