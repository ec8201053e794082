import type { LiveConfig } from '../config/live-config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { UpstreamEntry, UpstreamPool } from './upstream-pool.js';
import { normalizeModelName } from './model-name.js';

/** The outcome of one load / unload on one upstream. */
export interface ModelActionResult {
  upstream: string;
  ok: boolean;
  /** Upstream status, or the error text when it could not be asked. */
  status: number | string;
}

/** A loaded model on one upstream as /api/ps reports it, with when Parley last sent it a request. */
export interface LoadedModelView {
  name: string;
  size_bytes: number;
  expires_at: string | null;
  last_used_at: string | null;
}

/**
 * Model management (seed 000 gap 4): preload (Ollama's load request: `/api/generate` with only
 * `model` and `keep_alive`), unload (`keep_alive: 0`), reload, and least-recently-used unloading
 * when the loaded models of an upstream (sum of /api/ps `size`) exceed `models.maxLoadedBytes`.
 * "Used" = the last model request Parley received for it (`touch`); a model Parley never sent
 * anything is the least recently used. A model with requests running or queued is never unloaded.
 */
export class ModelManager {
  private readonly lastUsed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly live: LiveConfig,
    private readonly logger: Logger,
    private readonly busy: (entry: UpstreamEntry, model: string) => boolean = () => false,
    private readonly metrics?: Metrics,
  ) {}

  /** Records a request for `model` (LRU order). */
  touch(model: string): void {
    this.lastUsed.set(normalizeModelName(model), Date.now());
  }

  /** Loads `model` on every upstream that lists it, with `models.defaultKeepAlive` when set. */
  preload(model: string): Promise<ModelActionResult[]> {
    const keepAlive = this.live.current.models.defaultKeepAlive;
    const ka = keepAlive === '' ? {} : { keep_alive: /^-?\d+$/.test(keepAlive) ? Number(keepAlive) : keepAlive };
    this.touch(model);
    return this.onServing(model, { model, ...ka });
  }

  /** Unloads `model` from every upstream that lists it (Ollama unloads after in-flight requests). */
  unload(model: string): Promise<ModelActionResult[]> {
    return this.onServing(model, { model, keep_alive: 0 });
  }

  /** Unload, then load again. */
  async reload(model: string): Promise<ModelActionResult[]> {
    await this.unload(model);
    return this.preload(model);
  }

  /** Preloads `models.preload` (at start-up); failures are logged, never thrown. */
  async preloadConfigured(): Promise<void> {
    const models = this.live.current.models.preload;
    if (models.length === 0) return;
    await this.pool.checkAll();
    for (const model of models) {
      const results = await this.preload(model);
      this.logger.info({ model, results }, 'models.preloaded');
    }
  }

  /** Loaded models per upstream, read from /api/ps now. */
  async status(): Promise<Array<{ upstream: string; loaded: LoadedModelView[] }>> {
    return Promise.all(this.pool.entries.map(async (e) => ({ upstream: e.node.url, loaded: await this.loaded(e) })));
  }

  /**
   * Unloads least recently used idle models until the upstream's loaded bytes fit
   * `models.maxLoadedBytes` (0 = off). @returns the models unloaded.
   */
  async enforce(entry: UpstreamEntry): Promise<string[]> {
    const limit = this.live.current.models.maxLoadedBytes;
    if (limit <= 0) return [];
    const loaded = await this.loaded(entry);
    let total = loaded.reduce((s, m) => s + m.size_bytes, 0);
    const unloaded: string[] = [];
    const lru = [...loaded].sort((a, b) => (this.lastUsed.get(normalizeModelName(a.name)) ?? 0) - (this.lastUsed.get(normalizeModelName(b.name)) ?? 0));
    for (const m of lru) {
      if (total <= limit) break;
      if (this.busy(entry, normalizeModelName(m.name))) continue;
      await this.send(entry, { model: m.name, keep_alive: 0 });
      total -= m.size_bytes;
      unloaded.push(m.name);
      this.logger.info({ upstream: entry.node.url, model: m.name, limitBytes: limit }, 'models.lru_unloaded');
    }
    return unloaded;
  }

  /** Enforces the memory limit on every upstream every `intervalMs` (0 = never). */
  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.enforceAll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async loaded(entry: UpstreamEntry): Promise<LoadedModelView[]> {
    try {
      const res = await entry.node.request({ method: 'GET', path: '/api/ps', signal: AbortSignal.timeout(5_000) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return [];
      }
      const body = (await res.body.json()) as { models?: Array<{ name?: string; size?: number; expires_at?: string }> | null };
      return (body.models ?? []).map((m) => {
        const used = this.lastUsed.get(normalizeModelName(String(m.name)));
        return { name: String(m.name), size_bytes: Number(m.size ?? 0), expires_at: m.expires_at ?? null, last_used_at: used === undefined ? null : new Date(used).toISOString() };
      });
    } catch (e) {
      // Without /api/ps nothing can be unloaded this round; the next round asks again.
      this.failed(entry, 'ps', e);
      return [];
    }
  }

  /** Enforces the memory limit on every upstream; a failure on one is logged and counted, never thrown. */
  private async enforceAll(): Promise<void> {
    await Promise.all(
      this.pool.entries.map((e) =>
        this.enforce(e).catch((err: unknown) => {
          this.failed(e, 'enforce', err);
          return [];
        }),
      ),
    );
  }

  private failed(entry: UpstreamEntry, what: string, e: unknown): void {
    this.metrics?.upstreamFailures.inc({ upstream: entry.node.url, code: `model_manager_${what}` });
    this.logger.warn({ upstream: entry.node.url, err: e }, `models.${what}_failed`);
  }

  private async onServing(model: string, body: Record<string, unknown>): Promise<ModelActionResult[]> {
    const targets = this.pool.entries.filter((e) => e.node.servesModel(model));
    const results = await Promise.all((targets.length > 0 ? targets : [this.pool.pick(model)]).map((e) => this.send(e, body)));
    if (body.keep_alive !== 0) await this.enforceAll();
    return results;
  }

  private async send(entry: UpstreamEntry, body: Record<string, unknown>): Promise<ModelActionResult> {
    try {
      const res = await entry.node.request({ method: 'POST', path: '/api/generate', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(300_000) });
      await res.body.dump();
      return { upstream: entry.node.url, ok: res.statusCode === 200, status: res.statusCode };
    } catch (e) {
      this.failed(entry, 'load_request', e);
      return { upstream: entry.node.url, ok: false, status: e instanceof Error ? e.message : String(e) };
    }
  }
}
