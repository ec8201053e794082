import type { Dispatcher } from 'undici';
import { ParleyError } from '../errors/parley-error.js';
import type { ClientStream } from './client-stream.js';

/** Response headers worth passing from an upstream to the client (hop-by-hop ones are dropped). */
export function passHeaders(res: Dispatcher.ResponseData, withLength: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  const ct = res.headers['content-type'];
  if (typeof ct === 'string') out['Content-Type'] = ct;
  const cl = res.headers['content-length'];
  if (withLength && typeof cl === 'string') out['Content-Length'] = cl;
  return out;
}

/**
 * Relays an upstream response to the client byte for byte, each chunk as it arrives, with
 * backpressure (a slow client slows the upstream read, nothing piles up in memory). Headers go
 * out with the first body chunk, as Ollama's do. If the client response was already started
 * (queue position updates), the upstream's status line is lost, so a non-200 body is relayed
 * as an error line.
 * @throws ParleyError PARLEY_ERR_UPSTREAM_STREAM_BROKEN when the upstream connection fails mid-body
 */
export async function relayRaw(upstream: Dispatcher.ResponseData, client: ClientStream, upstreamUrl: string): Promise<void> {
  const startedEarly = client.started;
  let first = true;
  let lastByte = 10;
  try {
    for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
      if (first) {
        client.start(upstream.statusCode, passHeaders(upstream, true));
        first = false;
      }
      lastByte = chunk[chunk.length - 1] ?? lastByte;
      await client.write(chunk);
    }
  } catch (e) {
    if (client.gone) throw e;
    throw new ParleyError('PARLEY_ERR_UPSTREAM_STREAM_BROKEN', `connection to Ollama at ${upstreamUrl} was lost mid-reply`, { cause: e });
  }
  if (first) client.start(upstream.statusCode, passHeaders(upstream, true));
  client.end(startedEarly && lastByte !== 10 ? '\n' : undefined);
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
