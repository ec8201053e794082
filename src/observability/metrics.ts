import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every Prometheus metric Parley exposes, defined here and nowhere else (names
 * `parley_<area>_<thing>_<unit>`). One `Metrics` per app (its own registry, so tests that build
 * several apps in one process do not share counters). Served by `GET /metrics`
 * (src/api/http/metrics-route.ts).
 */
export class Metrics {
  readonly registry = new Registry();

  /** Upstream calls that failed, by upstream, kind (`refused`, `reset`, `status_502`, …) and error code. */
  readonly upstreamFailures = new Counter({
    name: 'parley_upstream_failures_total',
    help: 'Upstream model calls that failed, by upstream and error code.',
    labelNames: ['upstream', 'code'] as const,
    registers: [this.registry],
  });

  /** Each expiry of a timeout: `connect`, `first_byte`, `idle`. */
  readonly upstreamTimeouts = new Counter({
    name: 'parley_upstream_timeouts_total',
    help: 'Upstream timeouts that fired, by upstream and kind (connect, first_byte, idle).',
    labelNames: ['upstream', 'kind'] as const,
    registers: [this.registry],
  });

  /** Retries of model requests (before the first byte reached the client). */
  readonly retries = new Counter({
    name: 'parley_resilience_retries_total',
    help: 'Model requests retried before their first byte reached the client, by the error code that caused the retry.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  /** Breaker state per upstream: 0 closed, 1 open, 2 half-open. */
  readonly breakerState = new Gauge({
    name: 'parley_upstream_breaker_state',
    help: 'Circuit breaker state per upstream: 0 closed, 1 open, 2 half-open.',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  readonly breakerOpened = new Counter({
    name: 'parley_upstream_breaker_opened_total',
    help: 'Times an upstream circuit breaker opened.',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  /** 1 when the last health check reached the upstream. */
  readonly upstreamReachable = new Gauge({
    name: 'parley_upstream_reachable_ratio',
    help: '1 when the last health check reached the upstream, else 0.',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  readonly degradedResponses = new Counter({
    name: 'parley_degraded_responses_total',
    help: 'Answers given in degraded mode (no upstream could serve the model), by mode and endpoint.',
    labelNames: ['mode', 'endpoint'] as const,
    registers: [this.registry],
  });

  readonly cacheLookups = new Counter({
    name: 'parley_cache_lookups_total',
    help: 'Response cache lookups, by purpose (deterministic, degraded) and result (hit, miss).',
    labelNames: ['purpose', 'result'] as const,
    registers: [this.registry],
  });

  readonly cacheEntries = new Gauge({
    name: 'parley_cache_entries_count',
    help: 'Answers held in the response cache.',
    registers: [this.registry],
  });

  readonly cacheBytes = new Gauge({
    name: 'parley_cache_size_bytes',
    help: 'Bytes held in the response cache.',
    registers: [this.registry],
  });

  /** 0 ok, 1 evicting, 2 shedding. */
  readonly memoryState = new Gauge({
    name: 'parley_memory_guardian_state',
    help: 'Memory guardian state: 0 ok, 1 evicting caches, 2 shedding new requests.',
    registers: [this.registry],
  });

  readonly memoryRss = new Gauge({
    name: 'parley_memory_rss_bytes',
    help: 'Process resident set size at the last guardian sample.',
    registers: [this.registry],
  });

  readonly shedRequests = new Counter({
    name: 'parley_memory_shed_requests_total',
    help: 'Model requests refused with 503 because the memory guardian was shedding.',
    registers: [this.registry],
  });

  readonly slowClientsCut = new Counter({
    name: 'parley_stream_slow_clients_cut_total',
    help: 'Streams cut off because more than memory.streamBufferMaxBytes waited for the client.',
    registers: [this.registry],
  });

  readonly storageFailures = new Counter({
    name: 'parley_storage_failures_total',
    help: 'Database operations that failed (after retries where safe), by operation.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  readonly storageRetries = new Counter({
    name: 'parley_storage_retries_total',
    help: 'Database writes retried after a failure, by operation.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  /** Session turns that left history out to fit the model's context window. */
  readonly contextTruncations = new Counter({
    name: 'parley_context_truncations_total',
    help: 'Session turns that left older history out to fit the model context window.',
    registers: [this.registry],
  });

  readonly contextDroppedMessages = new Counter({
    name: 'parley_context_dropped_messages_total',
    help: 'Stored messages left out of upstream requests to fit the context window (summed over turns).',
    registers: [this.registry],
  });

  /** Summary runs by outcome: `made`, `failed`, `yielded` (stopped because a user request waited). */
  readonly contextSummaries = new Counter({
    name: 'parley_context_summaries_total',
    help: 'Background summary runs, by outcome (made, failed, yielded to a user request).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  /** |estimate - exact| / exact of a turn's new messages, once the upstream's exact count is known. */
  readonly contextEstimateError = new Histogram({
    name: 'parley_context_estimate_error_ratio',
    help: 'Relative error of the token estimate of new messages against the exact upstream count.',
    buckets: [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
    registers: [this.registry],
  });

  /** Ollama's `load_duration` of each reply, by model: near 0 when the model was loaded, the switch time when it had to be loaded. */
  readonly modelLoadDuration = new Histogram({
    name: 'parley_model_load_duration_seconds',
    help: "Ollama's load_duration of each model reply, by model (the model switch time when it had to be loaded).",
    labelNames: ['model'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: 'parley_request_duration_seconds',
    help: 'Model requests from arrival to the end of the response, by endpoint and outcome.',
    labelNames: ['endpoint', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'parley_' });
  }
}
