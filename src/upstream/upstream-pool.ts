import type { Logger } from '../observability/logger.js';
import type { ParleyConfig } from '../config/schema.js';
import type { Metrics } from '../observability/metrics.js';
import { ParleyError } from '../errors/parley-error.js';
import { AdmissionQueue } from '../queue/admission-queue.js';
import { UpstreamBreaker } from '../resilience/upstream-breaker.js';
import { UpstreamNode } from './upstream-node.js';

/** What real model calls (not health probes) last saw of an upstream: "is inference answering". */
export interface InferenceRecord {
  lastOkAt: string | null;
  lastFailureAt: string | null;
  /** Error code of the last failed call, or null. */
  lastFailure: string | null;
}

/**
 * An upstream with its admission queue and circuit breaker: model requests take a lease from
 * `queue`, then run through `breaker`.
 */
export interface UpstreamEntry {
  node: UpstreamNode;
  queue: AdmissionQueue;
  breaker: UpstreamBreaker;
  inference: InferenceRecord;
}

/**
 * The set of Ollama servers Parley serves from (`config.upstreams`, in order of preference),
 * with one admission queue each and periodic health checks (`GET /api/version`, `GET /api/tags`).
 */
export class UpstreamPool {
  readonly entries: readonly UpstreamEntry[];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private checking: Promise<void> | undefined;
  private readonly logger: Logger;
  private readonly healthIntervalMs: number;
  private readonly healthIntervalDownMs: number;
  private readonly healthTimeoutMs: number;
  private readonly metrics: Metrics | undefined;

  /**
   * @param fair fair queueing between keys (issue 6), `switchMaxWaitMs` read at every decision;
   *   used when `config.queue.fair` is true, else the queues are first come, first served.
   */
  constructor(config: ParleyConfig, logger: Logger, metrics?: Metrics, fair?: { switchMaxWaitMs: () => number }) {
    this.logger = logger;
    this.metrics = metrics;
    this.healthIntervalMs = config.upstream.healthIntervalMs;
    this.healthIntervalDownMs = Math.min(config.upstream.healthIntervalDownMs || config.upstream.healthIntervalMs, config.upstream.healthIntervalMs);
    this.healthTimeoutMs = Math.max(1_000, Math.min(config.upstream.connectTimeoutMs + 2_000, 10_000));
    this.entries = config.upstreams.map((origin, i) => ({
      breaker: new UpstreamBreaker({
        url: origin.replace(/\/+$/, ''),
        threshold: config.resilience.breakerThreshold,
        halfOpenAfterMs: config.resilience.breakerHalfOpenAfterMs,
        onStateChange: (state) => {
          const url = origin.replace(/\/+$/, '');
          metrics?.breakerState.set({ upstream: url }, state === 'closed' ? 0 : state === 'open' ? 1 : 2);
          if (state === 'open') metrics?.breakerOpened.inc({ upstream: url });
          const event = state === 'open' ? 'upstream.breaker_opened' : state === 'half_open' ? 'upstream.breaker_half_opened' : 'upstream.breaker_closed';
          logger[state === 'open' ? 'warn' : 'info']({ upstream: url }, event);
        },
      }),
      inference: { lastOkAt: null, lastFailureAt: null, lastFailure: null },
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
        onCallbackError: (e) => logger.error({ err: e, upstream: origin }, 'queue.callback_failed'),
        ...(config.queue.fair ? { fair: fair ?? { switchMaxWaitMs: () => config.queue.switchMaxWaitMs } } : {}),
      }),
    }));
  }

  /**
   * The upstream for a management call about `model` (show, copy, delete): among upstreams not
   * known to be down, one whose last `/api/tags` listed the model, the least loaded; else the first
   * not known to be down, else the first. Breakers are not consulted (they guard model calls).
   */
  pick(model: string): UpstreamEntry {
    const up = this.entries.filter((e) => e.node.health.reachable !== false);
    const serving = up.filter((e) => e.node.servesModel(model));
    return leastLoaded(serving.length > 0 ? serving : up.length > 0 ? up : [this.entries[0]!]);
  }

  /**
   * The upstream to run a model call on. Only upstreams whose circuit breaker admits a request
   * count (closed, or open long enough for a half-open probe); those in `exclude` (already tried
   * by this request) are skipped while others remain. Among them: not known to be down and whose
   * last `/api/tags` listed the model, else not known to be down, else any (the health state may
   * be stale: the request fails with a clear upstream error, or succeeds if it is back); the
   * least loaded (running + waiting) first, ties to the earlier one in config order.
   * @throws ParleyError PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN when every upstream's breaker is open
   */
  pickForCall(model: string, exclude?: ReadonlySet<UpstreamEntry>): UpstreamEntry {
    const admitted = this.entries.filter((e) => e.breaker.admits);
    if (admitted.length === 0) {
      throw new ParleyError('PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN', `every Ollama upstream failed repeatedly and is paused (circuit breaker open); model '${model}' cannot be served right now`);
    }
    const fresh = exclude ? admitted.filter((e) => !exclude.has(e)) : admitted;
    const candidates = fresh.length > 0 ? fresh : admitted;
    const up = candidates.filter((e) => e.node.health.reachable !== false);
    const serving = up.filter((e) => e.node.servesModel(model));
    return leastLoaded(serving.length > 0 ? serving : up.length > 0 ? up : candidates);
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

  /**
   * Checks every upstream every `upstream.healthIntervalMs`, and every
   * `upstream.healthIntervalDownMs` (500 ms) while one is down or its breaker is not closed, so an
   * upstream that comes back is in service again within about a second of answering.
   */
  startHealthChecks(): void {
    if (this.running || this.healthIntervalMs === 0) return;
    this.running = true;
    const loop = () => {
      void this.checkAll().finally(() => {
        if (!this.running) return;
        const anyDown = this.entries.some((e) => e.node.health.reachable === false || e.breaker.state !== 'closed');
        this.timer = setTimeout(loop, anyDown ? this.healthIntervalDownMs : this.healthIntervalMs);
        this.timer.unref();
      });
    };
    loop();
  }

  /** Records the outcome of a real model call (health: "is inference answering", not just "reachable"). */
  recordCall(entry: UpstreamEntry, failureCode: string | null): void {
    const now = new Date().toISOString();
    if (failureCode === null) entry.inference.lastOkAt = now;
    else {
      entry.inference.lastFailureAt = now;
      entry.inference.lastFailure = failureCode;
      this.metrics?.upstreamFailures.inc({ upstream: entry.node.url, code: failureCode });
    }
  }

  async close(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all(this.entries.map((e) => e.node.close()));
  }

  private async check(node: UpstreamNode): Promise<void> {
    const started = performance.now();
    const signal = AbortSignal.timeout(this.healthTimeoutMs);
    const wasReachable = node.health.reachable;
    try {
      // HEAD / is Ollama's liveness ("Ollama is running"); /api/version and /api/tags what it
      // offers; /api/ps which models are loaded now.
      const head = await node.request({ method: 'HEAD', path: '/', signal });
      await head.body.dump();
      const v = await node.request({ method: 'GET', path: '/api/version', signal });
      const version = v.statusCode === 200 ? ((await v.body.json()) as { version?: string }).version ?? null : (await v.body.dump(), null);
      const latencyMs = Math.round((performance.now() - started) * 100) / 100;
      const t = await node.request({ method: 'GET', path: '/api/tags', signal });
      const models = t.statusCode === 200 ? (((await t.body.json()) as { models?: Array<{ name?: string }> | null }).models ?? []).map((m) => String(m.name)) : (await t.body.dump(), undefined);
      const ps = await node.request({ method: 'GET', path: '/api/ps', signal });
      const loaded = ps.statusCode === 200 ? (((await ps.body.json()) as { models?: Array<{ name?: string }> | null }).models ?? []).map((m) => String(m.name)) : (await ps.body.dump(), undefined);
      node.recordHealth({ reachable: true, version, latencyMs, models, loadedModels: loaded }, new Date());
      this.metrics?.upstreamReachable.set({ upstream: node.url }, 1);
      if (wasReachable === false) this.logger.info({ upstream: node.url }, 'upstream.recovered');
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      node.recordHealth({ reachable: false, error }, new Date());
      this.metrics?.upstreamReachable.set({ upstream: node.url }, 0);
      if (wasReachable !== false) this.logger.warn({ upstream: node.url, err: error }, 'upstream.unreachable');
    }
  }
}

/** The least loaded entry of a non-empty list; ties go to the earlier one. */
function leastLoaded(pool: UpstreamEntry[]): UpstreamEntry {
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

/** Every upstream has the same slot count (queue.slotsPerUpstream), so load is running + waiting. */
function load(e: UpstreamEntry): number {
  return e.queue.active + e.queue.depth;
}
