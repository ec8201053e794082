import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import { toOllamaStreamLine, toOllamaWire } from '../errors/to-wire.js';

export const NDJSON = 'application/x-ndjson';
export const JSON_UTF8 = 'application/json; charset=utf-8';

/**
 * The client side of one response, written as Ollama writes it: no status line and no headers
 * until the first chunk exists (so a failure before it is a real 4xx/5xx `{"error":"…"}`), and
 * after that a failure is one final `{"error":"…"}` NDJSON line (reference §3, `streamResponse`).
 * Writes honour backpressure: `write` resolves once the socket buffer has drained.
 */
export class ClientStream {
  private endsWithNewline = true;
  private closedByPeer = false;

  constructor(
    readonly res: ServerResponse,
    private readonly baseHeaders: Record<string, string>,
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

  /** Writes bytes; resolves when the client can take more (backpressure), or at once if it is gone. */
  async write(chunk: string | Buffer): Promise<void> {
    if (this.gone || chunk.length === 0) return;
    const last = typeof chunk === 'string' ? chunk.charCodeAt(chunk.length - 1) : chunk[chunk.length - 1];
    this.endsWithNewline = last === 10;
    if (!this.res.write(chunk)) {
      await once(this.res, 'drain').catch(() => undefined);
    }
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
