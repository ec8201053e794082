import type { ParleyConfig } from '../config/schema.js';
import type { SessionService } from '../conversations/session-service.js';
import { ThreadService } from '../conversations/thread-service.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Database } from '../storage/database.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { ContextService } from './context-service.js';
import { ContextStore } from './context-store.js';
import { ContextWindows } from './context-window.js';
import { SummaryService } from './summary-service.js';
import { TokenEstimator } from './token-estimator.js';

/** Everything context management (issue 4) is made of, built once by the composition root. */
export interface ContextServices {
  estimator: TokenEstimator;
  windows: ContextWindows;
  store: ContextStore;
  context: ContextService;
  /** Undefined when `context.summary` is off. */
  summaries: SummaryService | undefined;
  /** Undefined when `threads.mode` is off. */
  threads: ThreadService | undefined;
}

/** Builds the context services from config (`context.*`, `threads.*`). */
export function createContextServices(
  config: ParleyConfig,
  deps: { pool: UpstreamPool; sessions: SessionService; database: Database; logger: Logger; metrics: Metrics; now: () => Date },
): ContextServices {
  const { pool, sessions, database, logger, metrics, now } = deps;
  const estimator = new TokenEstimator();
  const windows = new ContextWindows(pool, { defaultWindowTokens: config.context.defaultWindowTokens, windowCapTokens: config.context.windowCapTokens }, logger);
  const store = new ContextStore(database);
  const summaries =
    config.context.summary === 'on'
      ? new SummaryService({ pool, sessions, store, estimator, windows, logger, metrics, now, opts: { model: config.context.summaryModel, maxTokens: config.context.summaryMaxTokens } })
      : undefined;
  const context = new ContextService({ estimator, windows, store, summaries, logger, metrics, now, replyReserveTokens: config.context.replyReserveTokens });
  const threads =
    config.threads.mode === 'thread'
      ? new ThreadService(database, sessions, { retentionMs: config.threads.retentionMs, sweepIntervalMs: config.sessions.sweepIntervalMs, now }, logger, (ids) => store.deleteSessions(ids))
      : undefined;
  return { estimator, windows, store, context, summaries, threads };
}
