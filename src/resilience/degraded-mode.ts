import type { CachedReply } from './response-cache.js';

export type DegradedMode = 'error' | 'cache' | 'static';

/** Header on every degraded answer; its value is the mode that produced the answer. */
export const DEGRADED_HEADER = 'X-Parley-Degraded';

export interface DegradedOptions {
  mode: DegradedMode;
  /** Retry-After of degraded answers, in ms (sent rounded up to whole seconds). */
  retryAfterMs: number;
  staticGreeting: string;
  staticApology: string;
  staticRetry: string;
}

/** What the client asked, as far as a degraded answer needs to know. */
export interface DegradedRequest {
  endpoint: 'chat' | 'generate' | 'embed' | 'embeddings';
  /** Model name as the client sent it (echoed in chunks, as Ollama does). */
  model: string;
  /** NDJSON wanted (chat/generate with stream not false). */
  stream: boolean;
  /** True when this is the first user message of a conversation (static mode greets). */
  firstTurn: boolean;
  /** A recent identical answer, when the cache has one (mode `cache`). */
  cached?: CachedReply | undefined;
  /** Extra fields for every chunk (e.g. `session_id`). */
  extraFields?: Record<string, unknown>;
  /** Why no upstream could answer (the last upstream error's text), quoted in the error sentence. */
  reason?: string | undefined;
}

/** A whole response, ready to write: status, headers and body bytes. */
export interface DegradedAnswer {
  /** The mode that actually answered (`cache` without a hit falls back to `error`). */
  mode: DegradedMode;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Degraded mode: what Parley answers when no upstream can serve a model (every upstream down,
 * breakers open, retries used up), before any byte went to the client.
 *
 * - `error` (default): `503 {"error":"Ollama is unavailable right now (…), so model 'x' cannot
 *   answer; please try again in 10 seconds"}` with Retry-After (the body is exactly Ollama's shape).
 * - `cache`: a recent identical answer (same model, messages, options…) in the endpoint's own
 *   shape, streamed or whole; without one, the `error` answer.
 * - `static`: the configured greeting (first turn only), apology and retry line as the reply.
 *
 * Every answer carries the `X-Parley-Degraded: <mode>` header, and replies `"degraded":"<mode>"` on
 * every chunk, so a client (and a test) can tell it from the model's words. The pipeline never stores
 * a degraded answer in a session's history. Embedding endpoints always get the `error` answer.
 */
export class DegradedResponder {
  constructor(readonly opts: DegradedOptions) {}

  answer(req: DegradedRequest, now = new Date()): DegradedAnswer {
    const generating = req.endpoint === 'chat' || req.endpoint === 'generate';
    if (generating && this.opts.mode === 'cache' && req.cached) {
      return this.reply('cache', req, req.cached.content, req.cached.thinking, req.cached.toolCalls, req.cached.final, now);
    }
    if (generating && this.opts.mode === 'static') {
      const text = [req.firstTurn ? this.opts.staticGreeting : '', this.opts.staticApology, this.opts.staticRetry].filter((s) => s !== '').join(' ');
      return this.reply('static', req, text, '', [], ZERO_METRICS, now);
    }
    return this.error(req);
  }

  /**
   * A normal-operation cache hit (an identical deterministic request answered recently): the
   * endpoint's own shape, marked only with `X-Parley-Cache: hit` (it is the model's answer).
   */
  cachedAnswer(req: DegradedRequest & { cached: CachedReply }, now = new Date()): DegradedAnswer {
    const a = this.reply(undefined, req, req.cached.content, req.cached.thinking, req.cached.toolCalls, req.cached.final, now);
    return a;
  }

  /** The `error` answer: 503 in Ollama's shape with a human sentence and Retry-After. */
  error(req: Pick<DegradedRequest, 'model' | 'reason'>): DegradedAnswer {
    const seconds = Math.max(1, Math.ceil(this.opts.retryAfterMs / 1000));
    const why = req.reason ? ` (${req.reason})` : '';
    const text = `Ollama is unavailable right now${why}, so model '${req.model}' cannot answer; please try again in ${seconds} seconds`;
    // Exactly Ollama's error shape {"error":"…"}; the header marks it as degraded.
    return {
      mode: 'error',
      status: 503,
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'Retry-After': String(seconds), [DEGRADED_HEADER]: 'error' },
      body: JSON.stringify({ error: text }),
    };
  }

  private reply(marked: DegradedMode | undefined, req: DegradedRequest, content: string, thinking: string, toolCalls: unknown[], final: Record<string, unknown>, now: Date): DegradedAnswer {
    const mode = marked ?? 'cache';
    const created_at = now.toISOString();
    const chat = req.endpoint === 'chat';
    const extra = { ...(marked ? { degraded: marked } : {}), ...req.extraFields };
    const headers: Record<string, string> = marked
      ? { [DEGRADED_HEADER]: marked, 'Retry-After': String(Math.max(1, Math.ceil(this.opts.retryAfterMs / 1000))) }
      : { 'X-Parley-Cache': 'hit' };
    const piece = (text: string, think: string, tools: unknown[]) => {
      if (!chat) return { response: text, ...(think ? { thinking: think } : {}) };
      const message: Record<string, unknown> = { role: 'assistant', content: text };
      if (think) message.thinking = think;
      if (tools.length > 0) message.tool_calls = tools;
      return { message };
    };
    const { done: _d, ...finalFields } = final;
    const last = { model: req.model, created_at, ...piece('', '', []), done: true, ...finalFields, ...extra };
    if (!req.stream) {
      const whole = { model: req.model, created_at, ...piece(content, thinking, toolCalls), done: true, ...finalFields, ...extra };
      return { mode, status: 200, headers: { ...headers, 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify(whole) };
    }
    const first = { model: req.model, created_at, ...piece(content, thinking, toolCalls), done: false, ...extra };
    return { mode, status: 200, headers: { ...headers, 'Content-Type': 'application/x-ndjson' }, body: JSON.stringify(first) + '\n' + JSON.stringify(last) + '\n' };
  }
}

/** The final-chunk figures of an answer no model produced. */
const ZERO_METRICS: Record<string, unknown> = {
  done_reason: 'stop',
  total_duration: 0,
  load_duration: 0,
  prompt_eval_count: 0,
  prompt_eval_duration: 0,
  eval_count: 0,
  eval_duration: 0,
};
