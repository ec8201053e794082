import type { Dispatcher } from 'undici';
import { ParleyError } from '../errors/parley-error.js';
import { metricsFromChunk, type TurnRecorder } from '../conversations/turn-recorder.js';
import { JSON_UTF8, NDJSON, WRITTEN, type ClientStream } from './client-stream.js';
import { readChunks, STOP_READING } from './upstream-body.js';
import { NdjsonLines } from './ndjson-lines.js';
import { parseChatChunk } from './chat-chunk.js';
import { midStreamError } from './raw-relay.js';

export interface SessionRelayOptions {
  sessionId: string;
  /** What the client asked for; the upstream always streams so partial replies can be kept. */
  clientStream: boolean;
  recorder: TurnRecorder;
  upstreamUrl: string;
  /** Sees every upstream chunk (the response cache records answers with it). */
  tap?: ((chunk: Buffer) => void) | undefined;
  /** Extra response headers (X-Parley-Truncated, X-Session-Id of a thread). */
  headers?: Record<string, string> | undefined;
  /** Extra fields on the final (`done:true`) chunk only, e.g. `{"parley":{"truncated_messages":3,"summary":true}}`. */
  finalFields?: Record<string, unknown> | undefined;
  /** Called once the turn is stored (complete or incomplete), before the final chunk is written. */
  onStored?: (() => void) | undefined;
}

/**
 * Relays an upstream `/api/chat` stream for a session turn: each chunk goes to the client as it
 * arrives with `"session_id"` added, the reply accumulates in the recorder. The first chunk is
 * written only after the turn's rows (new messages + an `incomplete` reply) are stored, the final
 * `done:true` chunk only after the completed turn is durably stored. With `stream:false` the
 * chunks are joined into one object as Ollama does (reference §2) and sent at the end, after the
 * turn was stored (in one transaction when it ended within one partial-save interval).
 * Whatever ends the stream early (client gone, upstream error line, upstream cut) stores the
 * reply `incomplete`.
 */
export async function relaySessionStream(upstream: Dispatcher.ResponseData, client: ClientStream, opts: SessionRelayOptions): Promise<void> {
  const { recorder, clientStream } = opts;
  const suffix = `,"session_id":${JSON.stringify(opts.sessionId)}}\n`;
  const finalSuffix = Object.entries(opts.finalFields ?? {}).reduce((acc, [k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v)}` + acc, suffix);
  const headers = (contentType: string): Record<string, string> => ({ ...opts.headers, 'Content-Type': contentType });
  const lines = new NdjsonLines();
  const finish = async (status: 'complete' | 'incomplete', metrics: Parameters<TurnRecorder['finish']>[1]): Promise<void> => {
    await recorder.finish(status, metrics);
    opts.onStored?.();
  };
  let ended = false;
  let begun = false;
  // Chunk lines of one upstream read, written to the client with one write (a burst of tokens in
  // one TCP read was one write per token: the largest part of Parley's per-token cost).
  let out = '';
  const flush = (): Promise<void> | undefined => {
    if (out === '') return undefined;
    const text = out;
    out = '';
    return client.write(text);
  };

  // The last chunk, an error line and the first chunk of a stream wait for storage; every other
  // chunk is handled without a promise (most of a stream's chunks, at 50 tokens/s each its own read).
  const handle = (line: string): Promise<void> | undefined => {
    const chunk = parseChatChunk(line);
    // ollama-js skips lines that are not JSON; so do we, rather than failing the turn.
    if (chunk === undefined) return undefined;
    if (!clientStream) {
      // stream:false: nothing reaches the client before the end, so the turn is written when it
      // ends (one transaction) or by its first partial save; a failed write stops the upstream.
      if (recorder.beginFailure !== undefined) throw recorder.beginFailure;
    } else if (!begun) {
      // Nothing of the reply reaches the client before the turn's rows exist: a crash right after
      // the first chunk still finds the turn (incomplete), and a turn that cannot be written is
      // answered 503 PARLEY_ERR_STORAGE_UNAVAILABLE with no reply text (the upstream is aborted).
      return recorder.stored().then(() => {
        begun = true;
        return handleParsed(chunk, line);
      });
    }
    return handleParsed(chunk, line);
  };
  const handleParsed = (chunk: Record<string, unknown>, line: string): Promise<void> | undefined => {
    // Headers go out with the first chunk; later chunks need not build them again.
    if (clientStream && !client.started) client.start(200, headers(NDJSON));
    if (typeof chunk.error === 'string') {
      ended = true;
      return (async () => {
        await flush();
        await finish('incomplete', null);
        if (clientStream) client.end(line + '\n');
        else client.fail(new ParleyError('PARLEY_ERR_UPSTREAM_REJECTED', chunk.error as string, { status: 500 }));
      })();
    }
    recorder.add(chunk.message as Record<string, unknown> | undefined);
    if (chunk.done === true) {
      ended = true;
      return (async () => {
        await flush();
        await finish('complete', metricsFromChunk(chunk));
        if (clientStream) client.end(line.slice(0, -1) + finalSuffix);
        else client.sendWhole(200, headers(JSON_UTF8), JSON.stringify({ ...aggregate(chunk, recorder, opts.sessionId), ...opts.finalFields }));
      })();
    }
    if (clientStream) out += line.slice(0, -1) + suffix;
    return undefined;
  };

  // The lines of a chunk after one that waits (the first, the last, an error line), then the flush.
  const finishChunk = async (chunkLines: string[], from: number, pending: Promise<void>): Promise<typeof STOP_READING | undefined> => {
    await pending;
    for (let i = from; i < chunkLines.length && !ended; i++) {
      const next = handle(chunkLines[i]!);
      if (next !== undefined) await next;
    }
    await flush();
    return ended ? STOP_READING : undefined;
  };

  try {
    // A chunk of mid-reply tokens is handled without a promise; its lines go out in one write.
    await readChunks(upstream.body, (buf) => {
      opts.tap?.(buf);
      const chunkLines = lines.push(buf);
      for (let i = 0; i < chunkLines.length && !ended; i++) {
        const pending = handle(chunkLines[i]!);
        if (pending !== undefined) return finishChunk(chunkLines, i + 1, pending);
      }
      const written = flush();
      if (written !== undefined && written !== WRITTEN) return written.then(() => (ended ? STOP_READING : undefined));
      return ended ? STOP_READING : undefined;
    });
    const tail = lines.flush();
    if (tail && !ended) await handle(tail);
    await flush();
  } catch (e) {
    // Storage failures (already ParleyErrors) pass as they are; anything else broke the upstream read.
    if (!ended) await finish('incomplete', null);
    if (client.gone || e instanceof ParleyError) throw e;
    throw midStreamError(e, opts.upstreamUrl);
  }
  if (!ended) {
    // The upstream ended without done:true (Ollama's repetition guard does this): keep what
    // arrived, marked incomplete, and end the same way Ollama would.
    await finish('incomplete', null);
    if (clientStream) {
      client.start(200, headers(NDJSON));
      client.end();
    } else {
      client.fail(new ParleyError('PARLEY_ERR_UPSTREAM_INCOMPLETE', 'the model stopped before finishing its reply'));
    }
  }
}

/** The `stream:false` object: the final chunk with the joined message (reference §2). */
function aggregate(final: Record<string, unknown>, recorder: TurnRecorder, sessionId: string): Record<string, unknown> {
  const message: Record<string, unknown> = { role: 'assistant', content: recorder.reply.content };
  if (recorder.reply.thinking) message.thinking = recorder.reply.thinking;
  if (recorder.reply.toolCalls.length > 0) message.tool_calls = recorder.reply.toolCalls;
  return { ...final, message, session_id: sessionId };
}
