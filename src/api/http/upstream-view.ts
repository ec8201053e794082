import type { UpstreamPool } from '../../upstream/upstream-pool.js';

/**
 * Each upstream as `/api/health` and `GET /admin/upstreams` show it: reachability from the probes
 * (HEAD /, /api/version, /api/tags, /api/ps), whether it is serving (reachable and its circuit
 * breaker not open), what real calls last saw (inference), the breaker's state, the queue.
 */
export function upstreamsView(pool: UpstreamPool) {
  return pool.entries.map(({ node: { health: h }, queue, breaker, inference }) => ({
    url: h.url,
    reachable: h.reachable ?? false,
    serving: (h.reachable ?? false) && breaker.state !== 'open',
    version: h.version,
    latency_ms: h.latencyMs,
    last_check_at: h.lastCheckAt,
    error: h.error,
    models: h.models,
    loaded_models: h.loadedModels,
    breaker: breaker.snapshot(),
    inference: { last_ok_at: inference.lastOkAt, last_failure_at: inference.lastFailureAt, last_failure: inference.lastFailure },
    queue: { active: queue.active, depth: queue.depth },
  }));
}
