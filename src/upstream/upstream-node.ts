import { Pool, type Dispatcher } from 'undici';
import { ParleyError } from '../errors/parley-error.js';
import { normalizeModelName } from './model-name.js';

export interface UpstreamNodeOptions {
  /** Origin such as `http://127.0.0.1:11434`. */
  origin: string;
  connectTimeoutMs: number;
  /** Wait for response headers (the first chunk, Ollama holds headers until then), in ms. */
  headersTimeoutMs: number;
  /** Longest gap between two body chunks, in ms. */
  bodyTimeoutMs: number;
  connections: number;
}

/** What the last health check saw of one upstream. */
export interface UpstreamHealth {
  url: string;
  /** undefined until the first check completed. */
  reachable: boolean | undefined;
  version: string | null;
  latencyMs: number | null;
  lastCheckAt: string | null;
  error: string | null;
  /** Normalised names from the last successful `/api/tags`. */
  models: string[];
  /** Models loaded in memory at the last check (`/api/ps`). */
  loadedModels: string[];
}

export interface UpstreamRequest {
  method: Dispatcher.HttpMethod;
  /** Path and query, e.g. `/api/chat`. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer | NodeJS.ReadableStream | null;
  signal?: AbortSignal;
}

/**
 * One Ollama server: an undici Pool (keep-alive connections) plus its health state.
 * The `Host` header is always the upstream's own (undici sets it from the origin), never the
 * client's, because Ollama bound to loopback answers 403 to a foreign Host (reference §6.5).
 */
export class UpstreamNode {
  readonly url: string;
  readonly health: UpstreamHealth;
  private readonly pool: Pool;
  private readonly modelSet = new Set<string>();

  constructor(opts: UpstreamNodeOptions) {
    this.url = opts.origin.replace(/\/+$/, '');
    this.pool = new Pool(this.url, {
      connections: opts.connections,
      connectTimeout: opts.connectTimeoutMs,
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
      pipelining: 1,
    });
    this.health = { url: this.url, reachable: undefined, version: null, latencyMs: null, lastCheckAt: null, error: null, models: [], loadedModels: [] };
  }

  /**
   * Sends one request. Resolves with undici's response (any status); the caller reads or
   * destroys the body.
   * @throws ParleyError PARLEY_ERR_UPSTREAM_UNAVAILABLE (connect refused/reset/DNS),
   *   PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT / _FIRST_BYTE_TIMEOUT (headers), or the AbortSignal's reason when aborted.
   */
  async request(req: UpstreamRequest): Promise<Dispatcher.ResponseData> {
    try {
      return await this.pool.request({
        method: req.method,
        path: req.path,
        headers: req.headers ?? {},
        body: (req.body ?? null) as Dispatcher.DispatchOptions['body'],
        signal: req.signal,
      });
    } catch (e) {
      throw upstreamError(e, this.url, req.signal);
    }
  }

  /** True when the last `/api/tags` listed the model (normalised, case-insensitive). */
  servesModel(model: string): boolean {
    return this.modelSet.has(normalizeModelName(model));
  }

  /** Records a health check result. */
  recordHealth(result: { reachable: boolean; version?: string | null; latencyMs?: number | null; error?: string | null; models?: string[]; loadedModels?: string[] | undefined }, now: Date): void {
    if (result.loadedModels) this.health.loadedModels = result.loadedModels;
    if (!result.reachable) this.health.loadedModels = [];
    this.health.reachable = result.reachable;
    this.health.lastCheckAt = now.toISOString();
    this.health.error = result.error ?? null;
    if (result.latencyMs !== undefined) this.health.latencyMs = result.latencyMs;
    if (result.version) this.health.version = result.version;
    if (result.models) {
      this.health.models = result.models;
      this.modelSet.clear();
      for (const m of result.models) this.modelSet.add(normalizeModelName(m));
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** Maps an undici failure to Parley's error registry; an abort is passed through unchanged. */
export function upstreamError(e: unknown, url: string, signal?: AbortSignal): unknown {
  if (signal?.aborted) return signal.reason ?? e;
  const code = (e as { code?: string }).code ?? '';
  const message = (e as Error).message ?? String(e);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new ParleyError('PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT', `Ollama at ${url} did not accept a connection in time (${code})`, { cause: e });
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new ParleyError('PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT', `Ollama at ${url} did not start answering in time (${code})`, { cause: e });
  }
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new ParleyError('PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT', `Ollama at ${url} went silent mid-reply (${code})`, { cause: e });
  }
  return new ParleyError('PARLEY_ERR_UPSTREAM_UNAVAILABLE', `Ollama at ${url} is unavailable: ${code || message}`, { cause: e });
}
