import type { Dispatcher } from 'undici';
import { ParleyError, isParleyError } from '../errors/parley-error.js';
import { WRITTEN, type ClientStream } from './client-stream.js';
import { readChunks } from './upstream-body.js';

/** Response headers worth passing from an upstream to the client (hop-by-hop ones are dropped). */
export function passHeaders(res: Dispatcher.ResponseData, withLength: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  const ct = res.headers['content-type'];
  if (typeof ct === 'string') out['Content-Type'] = ct;
  const cl = res.headers['content-length'];
  if (withLength && typeof cl === 'string') out['Content-Length'] = cl;
  return out;
}

const WAIT = { wait: true };

/**
 * Relays an upstream response to the client byte for byte, each chunk as it arrives, with
 * backpressure (a slow client slows the upstream read, nothing piles up in memory). Headers go
 * out with the first body chunk, as Ollama's do. If the client response was already started
 * (queue position updates), the upstream's status line is lost, so a non-200 body is relayed
 * as an error line.
 * NDJSON streams are written without waiting for the client (bounded by the client stream's
 * buffer cap); other bodies wait for the client (backpressure).
 * `tap` sees every upstream chunk (the response cache records answers with it).
 * @throws ParleyError PARLEY_ERR_UPSTREAM_STREAM_BROKEN when the upstream connection fails mid-body,
 *   PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT when it goes silent longer than upstream.bodyTimeoutMs,
 *   PARLEY_ERR_STREAM_CLIENT_TOO_SLOW when the client was cut off
 */
export async function relayRaw(upstream: Dispatcher.ResponseData, client: ClientStream, upstreamUrl: string, tap?: (chunk: Buffer) => void): Promise<void> {
  const startedEarly = client.started;
  const writeOpts = String(upstream.headers['content-type'] ?? '').includes('ndjson') ? undefined : WAIT;
  let first = true;
  let lastByte = 10;
  try {
    await readChunks(upstream.body, (chunk) => {
      if (first) {
        client.start(upstream.statusCode, passHeaders(upstream, true));
        first = false;
      }
      lastByte = chunk[chunk.length - 1] ?? lastByte;
      tap?.(chunk);
      const written = client.write(chunk, writeOpts);
      return written === WRITTEN ? undefined : written;
    });
  } catch (e) {
    if (client.gone || isParleyError(e)) throw e;
    throw midStreamError(e, upstreamUrl);
  }
  if (first) client.start(upstream.statusCode, passHeaders(upstream, true));
  client.end(startedEarly && lastByte !== 10 ? '\n' : undefined);
}

/**
 * The error for an upstream read that failed after the reply started: PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT
 * for undici's body timeout (silence between chunks), else PARLEY_ERR_UPSTREAM_STREAM_BROKEN.
 */
export function midStreamError(e: unknown, upstreamUrl: string): ParleyError {
  if ((e as { code?: unknown }).code === 'UND_ERR_BODY_TIMEOUT') {
    return new ParleyError('PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT', `Ollama at ${upstreamUrl} went silent mid-reply (no chunk within upstream.bodyTimeoutMs)`, { cause: e });
  }
  return new ParleyError('PARLEY_ERR_UPSTREAM_STREAM_BROKEN', `connection to Ollama at ${upstreamUrl} was lost mid-reply`, { cause: e });
}

/** Reads a small upstream error body and turns it into a ParleyError with the upstream's status and text. */
export async function upstreamFailure(upstream: Dispatcher.ResponseData): Promise<ParleyError> {
  const text = await upstream.body.text();
  let message = text.trim();
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') message = parsed.error;
  } catch {
    // Not JSON (e.g. gin's plain-text 404): the text itself is the message.
    message = text.trim() || `upstream answered ${upstream.statusCode}`;
  }
  return new ParleyError('PARLEY_ERR_UPSTREAM_REJECTED', message, { status: upstream.statusCode });
}
