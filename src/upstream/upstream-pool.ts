import type { Logger } from '../observability/logger.js';
import type { ParleyConfig } from '../config/schema.js';
import { AdmissionQueue } from '../queue/admission-queue.js';
import { UpstreamNode } from './upstream-node.js';

/** An upstream with its admission queue: model requests take a lease from `queue` first. */
export interface UpstreamEntry {
  node: UpstreamNode;
  queue: AdmissionQueue;
}

/**
 * The set of Ollama servers Parley serves from (`config.upstreams`, in order of preference),
 * with one admission queue each and periodic health checks (`GET /api/version`, `GET /api/tags`).
 */
export class UpstreamPool {
  readonly entries: readonly UpstreamEntry[];
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly logger: Logger;
  private readonly healthIntervalMs: number;
  private readonly healthTimeoutMs: number;

  constructor(config: ParleyConfig, logger: Logger) {
    this.logger = logger;
    this.healthIntervalMs = config.upstream.healthIntervalMs;
    this.healthTimeoutMs = Math.max(1_000, Math.min(config.upstream.connectTimeoutMs + 2_000, 10_000));
    this.entries = config.upstreams.map((origin, i) => ({
      node: new UpstreamNode({
        origin,
        connectTimeoutMs: config.upstream.connectTimeoutMs,
        headersTimeoutMs: config.upstream.headersTimeoutMs,
        bodyTimeoutMs: config.upstream.bodyTimeoutMs,
        connections: config.upstream.connections,
      }),
      queue: new AdmissionQueue({
        name: `upstream-${i}`,
        slots: config.queue.slotsPerUpstream,
        maxDepth: config.queue.maxDepth,
        maxWaitMs: config.queue.maxWaitMs,
      }),
    }));
  }

  /**
   * The upstream to run `model` on: among upstreams not known to be down, those whose last
   * `/api/tags` listed the model, the least loaded (running + waiting); ties go to the
   * earlier one in config order. With no such upstream, the first one not known to be down,
   * else the first one (so the request fails with a clear upstream error, or succeeds if it is back).
   */
  pick(model: string): UpstreamEntry {
    const up = this.entries.filter((e) => e.node.health.reachable !== false);
    const serving = up.filter((e) => e.node.servesModel(model));
    const pool = serving.length > 0 ? serving : up;
    if (pool.length === 0) return this.entries[0]!;
    let best = pool[0]!;
    let bestLoad = load(best);
    for (const e of pool) {
      const l = load(e);
      if (l < bestLoad) {
        best = e;
        bestLoad = l;
      }
    }
    return best;
  }

  /** The upstream for management calls (pull, create, copy, delete, blobs): the first not known to be down. */
  primary(): UpstreamEntry {
    return this.entries.find((e) => e.node.health.reachable !== false) ?? this.entries[0]!;
  }

  /**
   * Whether some upstream serves `model`. Answered from the catalogs of the last health checks;
   * when none lists it, the catalogs are refreshed once (the model may have just been pulled).
   * When no upstream can be asked, answers true so the call itself reports the upstream failure.
   */
  async knowsModel(model: string): Promise<boolean> {
    if (this.entries.some((e) => e.node.servesModel(model))) return true;
    await this.checkAll();
    if (this.entries.every((e) => e.node.health.reachable === false)) return true;
    return this.entries.some((e) => e.node.servesModel(model));
  }

  /** Checks every upstream once, in parallel. Never throws: failures are recorded as unreachable. */
  async checkAll(): Promise<void> {
    // Concurrent callers share one round of checks.
    this.checking ??= Promise.all(this.entries.map((e) => this.check(e.node))).then(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  startHealthChecks(): void {
    if (this.timer || this.healthIntervalMs === 0) return;
    void this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.healthIntervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all(this.entries.map((e) => e.node.close()));
  }

  private async check(node: UpstreamNode): Promise<void> {
    const started = performance.now();
    const signal = AbortSignal.timeout(this.healthTimeoutMs);
    const wasReachable = node.health.reachable;
    try {
      const v = await node.request({ method: 'GET', path: '/api/version', signal });
      const version = v.statusCode === 200 ? ((await v.body.json()) as { version?: string }).version ?? null : (await v.body.dump(), null);
      const latencyMs = Math.round((performance.now() - started) * 100) / 100;
      const t = await node.request({ method: 'GET', path: '/api/tags', signal });
      const models = t.statusCode === 200 ? (((await t.body.json()) as { models?: Array<{ name?: string }> | null }).models ?? []).map((m) => String(m.name)) : (await t.body.dump(), undefined);
      node.recordHealth({ reachable: true, version, latencyMs, models }, new Date());
      if (wasReachable === false) this.logger.info({ upstream: node.url }, 'upstream.recovered');
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      node.recordHealth({ reachable: false, error }, new Date());
      if (wasReachable !== false) this.logger.warn({ upstream: node.url, err: error }, 'upstream.unreachable');
    }
  }
}

/** Every upstream has the same slot count (queue.slotsPerUpstream), so load is running + waiting. */
function load(e: UpstreamEntry): number {
  return e.queue.active + e.queue.depth;
}
