import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import { toOllamaStreamLine, toOllamaWire } from '../errors/to-wire.js';
import { ParleyError } from '../errors/parley-error.js';

/** Per-stream memory cap (memory guardian, seed 000). */
export interface ClientStreamLimits {
  /** Bytes that may wait in the response's buffer for a slow client before it is cut off. */
  maxBufferedBytes: number;
  /** Called once when the client is cut off for being too slow (metrics, logs). */
  onCutOff?: (bufferedBytes: number) => void;
}

export const NDJSON = 'application/x-ndjson';

/** What `HttpClientStream.write` returns when there is nothing to wait for (callers may skip awaiting it). */
export const WRITTEN: Promise<void> = Promise.resolve();
const noop = (): void => undefined;
export const JSON_UTF8 = 'application/json; charset=utf-8';

/**
 * Something the pipeline reports that is not part of the Ollama wire (the conversations API turns
 * it into `step` / `warning` events; the NDJSON writer ignores it).
 * - `context_built`: the prompt is ready; `messages` sent to the model, `truncatedMessages` left
 *   out of the history to fit the window (0 or absent: none), `summaryUsed` when a summary of
 *   older history stands in for them.
 */
export interface PipelineStep {
  stage: 'context_built';
  messages: number;
  truncatedMessages?: number | undefined;
  summaryUsed?: boolean | undefined;
}

/**
 * Where the one pipeline (ModelCallService) writes a response: Ollama's bytes (NDJSON chunks or a
 * whole body), status and headers. `HttpClientStream` writes them to an HTTP response; the
 * conversations API's reply run parses them into typed events (src/chat/reply-run.ts).
 */
export interface ClientStream {
  /** True once status and headers (or any byte) went out. */
  readonly started: boolean;
  /** True once the consumer is gone (connection closed, reply cancelled). */
  readonly gone: boolean;
  /** True once the consumer was cut off for reading too slowly. */
  readonly cutOff: boolean;
  /** Sends status and headers; no-op if already started. */
  start(status: number, headers: Record<string, string>): void;
  /** Sets the per-stream memory cap. */
  limit(limits: ClientStreamLimits): void;
  /** Writes bytes (see HttpClientStream.write for the buffering rules). */
  write(chunk: string | Buffer, opts?: { wait?: boolean }): Promise<void>;
  /** Ends the response, optionally with a last chunk. */
  end(chunk?: string | Buffer): void;
  /** Sends a whole response if nothing was sent yet (else ends with `body`). */
  sendWhole(status: number, headers: Record<string, string>, body: string | Buffer): void;
  /** Reports a failure: a real status before the first byte, a final `{"error"}` line after it. */
  fail(error: unknown): void;
  /** Optional: pipeline progress that has no Ollama wire form. */
  step?(step: PipelineStep): void;
}

/**
 * The client side of one HTTP response, written as Ollama writes it: no status line and no headers
 * until the first chunk exists (so a failure before it is a real 4xx/5xx `{"error":"…"}`), and
 * after that a failure is one final `{"error":"…"}` NDJSON line (reference §3, `streamResponse`).
 *
 * Memory per stream is bounded: token streams (`write`) do not wait for a slow client, so the
 * upstream (and its GPU slot) runs at model speed, but at most `limits.maxBufferedBytes` may wait
 * in the response buffer; past that the client is cut off (socket destroyed, which aborts the
 * upstream request) and `write` throws PARLEY_ERR_STREAM_CLIENT_TOO_SLOW. Whole bodies relayed
 * in pieces (`write(…, { wait: true })`) honour backpressure instead: they wait for 'drain'.
 */
export class HttpClientStream implements ClientStream {
  private endsWithNewline = true;
  private closedByPeer = false;
  private cut = false;

  constructor(
    readonly res: ServerResponse,
    private readonly baseHeaders: Record<string, string>,
    private limits: ClientStreamLimits = { maxBufferedBytes: Number.POSITIVE_INFINITY },
  ) {
    res.once('close', () => {
      if (!res.writableFinished) this.closedByPeer = true;
    });
  }

  get started(): boolean {
    return this.res.headersSent;
  }

  /** True once the client closed the connection before the response finished. */
  get gone(): boolean {
    return this.closedByPeer || this.res.destroyed;
  }

  /** Sends status and headers (merged over the base headers, e.g. X-Request-Id). No-op if already started. */
  start(status: number, headers: Record<string, string>): void {
    if (this.res.headersSent) return;
    this.res.writeHead(status, { ...this.baseHeaders, ...headers });
  }

  /** Sets the per-stream memory cap (the pipeline does, from `memory.streamBufferMaxBytes`). */
  limit(limits: ClientStreamLimits): void {
    this.limits = limits;
  }

  /** True once the client was cut off for reading too slowly. */
  get cutOff(): boolean {
    return this.cut;
  }

  /**
   * Writes bytes. By default does not wait for the client, but cuts it off once more than
   * `limits.maxBufferedBytes` wait for it; with `wait`, resolves once the client can take more
   * (backpressure). Resolves at once if the client is gone.
   * @throws ParleyError PARLEY_ERR_STREAM_CLIENT_TOO_SLOW when this write cut the client off
   */
  write(chunk: string | Buffer, opts?: { wait?: boolean }): Promise<void> {
    // Not async: a token stream's write returns the one settled promise instead of a new one.
    if (this.gone || chunk.length === 0) return WRITTEN;
    const last = typeof chunk === 'string' ? chunk.charCodeAt(chunk.length - 1) : chunk[chunk.length - 1];
    this.endsWithNewline = last === 10;
    const ok = this.res.write(chunk);
    if (opts?.wait) {
      return ok ? WRITTEN : once(this.res, 'drain').then(noop, noop);
    }
    const buffered = this.res.writableLength;
    if (buffered > this.limits.maxBufferedBytes) {
      this.cut = true;
      this.limits.onCutOff?.(buffered);
      // Destroying the socket frees the buffer now; its 'close' aborts the upstream request.
      this.res.destroy();
      return Promise.reject(new ParleyError('PARLEY_ERR_STREAM_CLIENT_TOO_SLOW', `the client read too slowly: more than ${this.limits.maxBufferedBytes} bytes waited for it (memory.streamBufferMaxBytes)`));
    }
    return WRITTEN;
  }

  /** Ends the response, optionally with a last chunk. */
  end(chunk?: string | Buffer): void {
    if (this.res.writableEnded) return;
    if (chunk !== undefined) this.res.end(chunk);
    else this.res.end();
  }

  /** Sends a whole response (status, headers, body) if nothing was sent yet. */
  sendWhole(status: number, headers: Record<string, string>, body: string | Buffer): void {
    if (this.gone) return;
    if (this.res.headersSent) {
      this.end(body);
      return;
    }
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    this.res.writeHead(status, { ...this.baseHeaders, ...headers, 'Content-Length': String(bytes.length) });
    this.res.end(bytes);
  }

  /**
   * Reports a failure the way Ollama does: a real status with `{"error":"…"}` before the first
   * byte, else a final `{"error":"…"}` line on the open stream. Then ends the response.
   */
  fail(error: unknown): void {
    if (this.gone || this.res.writableEnded) return;
    if (!this.res.headersSent) {
      const wire = toOllamaWire(error);
      this.sendWhole(wire.status, { 'Content-Type': JSON_UTF8, ...wire.headers }, wire.body);
      return;
    }
    const line = toOllamaStreamLine(error);
    this.end(this.endsWithNewline ? line : '\n' + line);
  }
}
