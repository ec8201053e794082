import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SessionService } from '../conversations/session-service.js';
import type { HistoryVersion } from '../conversations/session-store.js';
import type { ThreadService } from '../conversations/thread-service.js';
import type { SessionAccess } from '../conversations/session-access.js';
import type { ContextService } from '../context/context-service.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { DegradedResponder } from '../resilience/degraded-mode.js';
import type { MemoryGuardian } from '../resilience/memory-guardian.js';
import type { ResponseCache } from '../resilience/response-cache.js';
import type { RequestRetry } from '../resilience/retry-policy.js';
import type { Caller } from '../usage/key-service.js';
import type { UsageService } from '../usage/usage-service.js';

/** The shapes the request pipeline takes: a model call and the services it runs on. */

/** The Ollama endpoints that run a model and therefore take a queue slot. */
export type ModelEndpoint = 'chat' | 'generate' | 'embed' | 'embeddings';

/** One model-running request, already parsed and validated by the API layer. */
export interface ModelCall {
  endpoint: ModelEndpoint;
  requestId: string;
  /** Model name as the client sent it. */
  model: string;
  /** Wire body to forward (unknown fields kept, Parley's own fields such as session_id removed). */
  body: Record<string, unknown>;
  /** Whether the client wants NDJSON (chat/generate; `stream` absent means true). False for embeddings. */
  clientStream: boolean;
  /** Set for `/api/chat` turns with a session: the stored history is prepended and the turn stored. */
  sessionId?: string | undefined;
  /**
   * The session's history version as the ownership check read it just before (null: no such
   * session yet), so the pipeline need not read it again; undefined: not read.
   */
  knownHistory?: HistoryVersion | null | undefined;
  /** Opted in to position updates (`X-Parley-Queue-Updates: 1`); only honoured when streaming. */
  queueUpdates: boolean;
  /** Client headers worth forwarding (Accept, User-Agent); never Host. */
  forwardHeaders: Record<string, string>;
  /** threads.mode = thread: who the caller is for threading a chat without a session id (see ThreadService). */
  threadCaller?: string | undefined;
  /** Who asks (resolved from the API key); undefined = anonymous. */
  caller?: Caller | undefined;
}

/** The response cache as the pipeline uses it. */
export interface PipelineCache {
  store: ResponseCache;
  /** Degraded mode `cache`: oldest answer served, in ms. */
  degradedTtlMs: number;
  /** Normal operation: deterministic requests answered from the cache this long, in ms; 0 = off. */
  deterministicTtlMs: number;
  /** Record answers at all (degraded mode is `cache`, or deterministicTtlMs > 0). */
  record: boolean;
}

/** Memory caps the pipeline enforces (memory guardian, seed 000). */
export interface PipelineLimits {
  streamBufferMaxBytes: number;
  sessionMaxMessages: number;
  sessionMaxBytes: number;
}

export interface ModelCallDeps {
  pool: UpstreamPool;
  sessions: SessionService;
  logger: Logger;
  positionUpdateIntervalMs: number;
  /** Retries before the first byte; default: none. */
  retry?: RequestRetry | undefined;
  /** Degraded-mode answers when no upstream can serve; default: the plain error. */
  degraded?: DegradedResponder | undefined;
  cache?: PipelineCache | undefined;
  guardian?: MemoryGuardian | undefined;
  metrics?: Metrics | undefined;
  limits?: PipelineLimits | undefined;
  /** Context windows, truncation, summaries and token counts for session turns (issue 4); default: none. */
  context?: ContextService | undefined;
  /** Threads for chats without a session id (threads.mode = thread); default: none. */
  threads?: ThreadService | undefined;
  /** Budgets, rate limits and usage records (issue 6); default: none. */
  usage?: UsageService | undefined;
  /** Session ownership: a keyed caller's new thread is recorded as its own; default: none. */
  access?: SessionAccess | undefined;
}

