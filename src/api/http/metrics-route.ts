import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../observability/metrics.js';

/**
 * `GET /metrics`: every Parley metric in Prometheus' text format (metric definitions:
 * src/observability/metrics.ts). `refresh` runs first so gauges read live state.
 */
export function registerMetricsRoute(app: FastifyInstance, metrics: Metrics, refresh?: () => void): void {
  app.get('/metrics', async (_request, reply) => {
    refresh?.();
    const body = await metrics.registry.metrics();
    return reply.header('Content-Type', metrics.registry.contentType).send(body);
  });
}
