import type { Logger } from '../observability/logger.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { normalizeModelName } from '../upstream/model-name.js';

export interface ContextWindowOptions {
  /** Window when neither num_ctx nor /api/show gives one, in tokens. */
  defaultWindowTokens: number;
  /** Upper bound on any window, in tokens; 0 = none. */
  windowCapTokens: number;
  /** How long a /api/show answer is reused, in ms. Default 10 minutes. */
  showTtlMs?: number;
  /** How long an /api/show answer without a context length (or a 4xx) is remembered, in ms. Default 5 s. */
  failureTtlMs?: number;
  /**
   * Timeout of one /api/show request, in ms; 0 (default) = none of its own: the upstream's
   * first-byte and idle timeouts apply, as they do to the turn itself. A slow /api/show is waited
   * for, never taken as "no context length".
   */
  showTimeoutMs?: number;
}

/** Where a window came from. */
export type WindowSource = 'num_ctx' | 'show' | 'default';

export interface ResolvedWindow {
  /** Context window in tokens. */
  tokens: number;
  source: WindowSource;
}

interface CacheEntry {
  /** `<arch>.context_length` or null when the upstream could not tell. */
  tokens: number | null;
  expiresAt: number;
}

/**
 * The context window of a model, as Ollama would apply it: `options.num_ctx` when the request
 * sets one (capped at the model's training context, as Ollama caps it) > the model's
 * `<arch>.context_length` from the upstream's `POST /api/show` (cached per upstream and model) >
 * `defaultWindowTokens`; then capped at `windowCapTokens` when set.
 *
 * Note: real Ollama runs a model at `OLLAMA_CONTEXT_LENGTH` (4096 by default on small GPUs), not
 * its training context, unless the request sets num_ctx; set `context.windowCapTokens` to match.
 */
export class ContextWindows {
  private readonly cache = new Map<string, CacheEntry>();
  /** The last context length each upstream and model answered (used while /api/show cannot be asked). */
  private readonly lastKnown = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<number | null>>();

  constructor(
    private readonly pool: UpstreamPool,
    private readonly opts: ContextWindowOptions,
    private readonly logger: Logger,
  ) {}

  /** Resolves the window for `model` and the request's `options`. Never throws. */
  async resolve(model: string, options: unknown): Promise<ResolvedWindow> {
    const trained = await this.trainedLength(model);
    const numCtx = options !== null && typeof options === 'object' ? (options as Record<string, unknown>).num_ctx : undefined;
    let window: ResolvedWindow;
    if (typeof numCtx === 'number' && Number.isFinite(numCtx) && numCtx > 0) {
      window = { tokens: trained === null ? Math.trunc(numCtx) : Math.min(Math.trunc(numCtx), trained), source: 'num_ctx' };
    } else if (trained !== null) {
      window = { tokens: trained, source: 'show' };
    } else {
      window = { tokens: this.opts.defaultWindowTokens, source: 'default' };
    }
    if (this.opts.windowCapTokens > 0 && window.tokens > this.opts.windowCapTokens) window = { ...window, tokens: this.opts.windowCapTokens };
    return window;
  }

  /** The model's training context from /api/show on the upstream that serves it (cached), or null. */
  private async trainedLength(model: string): Promise<number | null> {
    const entry = this.pool.pick(model);
    const key = `${entry.node.url}|${normalizeModelName(model)}`;
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > Date.now()) return hit.tokens;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetchLength(entry.node, model).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /**
   * Asks the upstream. An answer (a length, or none: 200 without one, a 4xx) is cached; a failure
   * to get one (connection error, timeout, 5xx) is not: the last length known for the model is
   * used (else null, so the default window), logged as a warning, and the next turn asks again.
   */
  private async fetchLength(node: UpstreamPool['entries'][number]['node'], model: string): Promise<number | null> {
    const key = `${node.url}|${normalizeModelName(model)}`;
    let tokens: number | null = null;
    let failure: unknown;
    try {
      const timeoutMs = this.opts.showTimeoutMs ?? 0;
      const res = await node.request({
        method: 'POST',
        path: '/api/show',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model }),
        ...(timeoutMs > 0 ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
      });
      if (res.statusCode === 200) tokens = contextLengthOf((await res.body.json()) as Record<string, unknown>);
      else await res.body.dump();
      if (res.statusCode >= 500) failure = `status ${res.statusCode}`;
    } catch (e) {
      failure = e;
    }
    if (failure !== undefined) {
      const known = this.lastKnown.get(key) ?? null;
      this.logger.warn({ err: failure, upstream: node.url, model, usingTokens: known ?? this.opts.defaultWindowTokens, source: known === null ? 'default' : 'last_known' }, 'context.window_unknown');
      return known;
    }
    if (tokens !== null) this.lastKnown.set(key, tokens);
    const ttl = tokens === null ? (this.opts.failureTtlMs ?? 5_000) : (this.opts.showTtlMs ?? 600_000);
    this.cache.set(key, { tokens, expiresAt: Date.now() + ttl });
    return tokens;
  }
}

/** `model_info["<general.architecture>.context_length"]`, else any `*.context_length`, else null. */
export function contextLengthOf(show: Record<string, unknown>): number | null {
  const info = show.model_info;
  if (info === null || typeof info !== 'object') return null;
  const map = info as Record<string, unknown>;
  const arch = map['general.architecture'];
  const direct = typeof arch === 'string' ? map[`${arch}.context_length`] : undefined;
  if (typeof direct === 'number' && direct > 0) return direct;
  for (const [k, v] of Object.entries(map)) if (k.endsWith('.context_length') && typeof v === 'number' && v > 0) return v;
  return null;
}
