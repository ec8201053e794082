import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ParleyConfig } from './config/schema.js';
import type { Logger } from './observability/logger.js';
import { createHttpServer } from './api/http/http-server.js';
import { registerManagementRoutes } from './api/ollama/management-routes.js';
import { registerModelRoutes } from './api/ollama/model-routes.js';
import { registerParleyRoutes } from './api/ollama/parley-routes.js';
import { registerMetricsRoute } from './api/http/metrics-route.js';
import { registerConversationRoutes } from './api/conversations/routes.js';
import { ConversationReplies } from './chat/conversation-replies.js';
import { ConversationService } from './conversations/conversation-service.js';
import { SqlConversationStore } from './conversations/sql-conversation-store.js';
import { SessionAccess } from './conversations/session-access.js';
import { contextWire } from './api/ollama/parley-routes.js';
import { Metrics } from './observability/metrics.js';
import { registerAdminRoutes } from './api/admin/admin-routes.js';
import { isLoopbackHost, registerAuth } from './api/http/auth.js';
import { LiveConfig } from './config/live-config.js';
import { ModelManager } from './upstream/model-manager.js';
import { AuditStore } from './usage/audit-store.js';
import { KeyService } from './usage/key-service.js';
import { UsageService } from './usage/usage-service.js';
import { DegradedResponder } from './resilience/degraded-mode.js';
import { MemoryGuardian } from './resilience/memory-guardian.js';
import { ResponseCache } from './resilience/response-cache.js';
import { RequestRetry } from './resilience/retry-policy.js';
import { withStorageRetry } from './resilience/storage-retry.js';
import { ModelCallService } from './chat/model-call-service.js';
import { createContextServices, type ContextServices } from './context/context-setup.js';
import { SessionService } from './conversations/session-service.js';
import { SqlSessionStore } from './conversations/sql-session-store.js';
import { openDatabase, type Database } from './storage/database.js';
import { migrateToLatest } from './storage/migrations.js';
import { UpstreamPool } from './upstream/upstream-pool.js';
import { PARLEY_VERSION } from './version.js';

export interface AppDeps {
  config: ParleyConfig;
  logger: Logger;
  /** Clock for stored timestamps and session expiry; default `() => new Date()`. */
  now?: () => Date;
  /** An already-open database (tests); default: opened from `config.databaseUrl`. */
  database?: Database;
}

export interface App {
  http: FastifyInstance;
  pool: UpstreamPool;
  sessions: SessionService;
  calls: ModelCallService;
  database: Database;
  /** API keys (issue 6). */
  keys: KeyService;
  /** Budgets, rate limits and usage records. */
  usage: UsageService;
  /** Settings as they are now (PATCH /admin/config changes some at run time). */
  live: LiveConfig;
  models: ModelManager;
  /** Every Prometheus metric (also at GET /metrics). */
  metrics: Metrics;
  /** Process-wide memory guardian (state in /api/health). */
  guardian: MemoryGuardian;
  /** The exact-match response cache (degraded mode `cache`, deterministic requests). */
  cache: ResponseCache;
  /** Context management: token estimator, windows, summaries, threads (issue 4). */
  context: ContextServices;
  /** Starts listening and background work; resolves with the bound URL. */
  listen(): Promise<string>;
  /**
   * Graceful stop: refuses new model requests, lets running ones finish for up to
   * `config.shutdown.drainTimeoutMs`, then closes connections, upstream pools and the database.
   */
  close(): Promise<void>;
}

const UNUSED_SOCKET_GRACE_MS = 1_000;

/** Composition root: builds every service from config (and injected clock and database). */
export async function buildApp(deps: AppDeps): Promise<App> {
  const { config, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const database = deps.database ?? (await openDatabase(config.databaseUrl, { logger }));
  await migrateToLatest(database);
  const metrics = new Metrics();
  // Idempotent writes (completeTurn, savePartial) are retried on storage failures; failures counted.
  const store = withStorageRetry(new SqlSessionStore(database, logger), {
    onRetry: (operation, err) => {
      metrics.storageRetries.inc({ operation });
      logger.warn({ operation, err }, 'storage.write_retrying');
    },
    onFailure: (operation) => metrics.storageFailures.inc({ operation }),
  });
  const sessions = new SessionService(store, { ...config.sessions, now }, logger);
  const live = new LiveConfig(config);
  const keys = new KeyService(database, { tiers: () => Object.keys(live.current.users.tiers), defaultTier: () => live.current.users.defaultTier, now });
  if (config.auth.mode === 'auto' && !isLoopbackHost(config.host) && !(await keys.hasActiveKeys())) {
    await database.close();
    throw new Error(`refusing to serve anonymously on ${config.host} (not loopback): create an API key (parley keys create --name … --tier …) or set PARLEY_AUTH_MODE=off (anyone can use it) or required`);
  }
  const usage = new UsageService({ database, live, now, logger });
  const audit = new AuditStore(database);
  const pool = new UpstreamPool(config, logger, metrics, { switchMaxWaitMs: () => live.current.queue.switchMaxWaitMs });
  const models = new ModelManager(pool, live, logger, (entry, model) => entry.queue.modelInUse(model), metrics);
  live.onChange((next, prev) => {
    if (next.queue.slotsPerUpstream !== prev.queue.slotsPerUpstream) for (const e of pool.entries) e.queue.setSlots(next.queue.slotsPerUpstream);
    if (next.logLevel !== prev.logLevel) logger.level = next.logLevel;
  });
  const cache = new ResponseCache({ maxEntries: config.cache.maxEntries, maxBytes: config.cache.maxBytes });
  const guardian = new MemoryGuardian({
    ...config.memory,
    onSample: (s) => metrics.memoryRss.set(s.rss),
    onStateChange: (state, s) => {
      metrics.memoryState.set(state === 'ok' ? 0 : state === 'evicting' ? 1 : 2);
      logger[state === 'ok' ? 'info' : 'warn']({ state, rssBytes: s.rss, heapUsedBytes: s.heapUsed }, 'memory.state_changed');
    },
  });
  guardian.addEvictor(() => cache.clear());
  guardian.addEvictor(() => sessions.evictCache());
  const context = createContextServices(config, { pool, sessions, database, logger, metrics, now });
  const access = new SessionAccess(database, now);
  const calls = new ModelCallService({
    pool,
    sessions,
    logger,
    positionUpdateIntervalMs: config.queue.positionUpdateIntervalMs,
    retry: new RequestRetry({
      maxRetries: config.resilience.maxRetries,
      baseDelayMs: config.resilience.retryBaseDelayMs,
      maxDelayMs: config.resilience.retryMaxDelayMs,
      retryAfterCapMs: config.resilience.retryAfterCapMs,
    }),
    degraded: new DegradedResponder(config.degraded),
    cache: {
      store: cache,
      degradedTtlMs: config.cache.degradedTtlMs,
      deterministicTtlMs: config.cache.deterministicTtlMs,
      record: config.cache.maxEntries > 0 && (config.degraded.mode === 'cache' || config.cache.deterministicTtlMs > 0),
    },
    guardian,
    metrics,
    context: context.context,
    threads: context.threads,
    usage,
    access,
    limits: {
      streamBufferMaxBytes: config.memory.streamBufferMaxBytes,
      sessionMaxMessages: config.memory.sessionMaxMessages,
      sessionMaxBytes: config.memory.sessionMaxBytes,
    },
  });
  const conversations = new ConversationService(new SqlConversationStore(database, logger), sessions, { maxMessageBytes: config.conversations.maxMessageBytes, now });
  const replies = new ConversationReplies(calls, pool, {
    graceMs: config.conversations.reconnectGraceMs,
    retentionMs: config.conversations.replyRetentionMs,
    maxEvents: config.conversations.replyBufferMaxEvents,
  }, logger);
  const http = createHttpServer({ logger, bodyLimitBytes: config.bodyLimitBytes });
  const startedAt = Date.now();

  registerAuth(http, { keys, mode: () => live.current.auth.mode, adminToken: () => live.current.admin.token });
  registerAdminRoutes(http, {
    pool, keys, usage, audit, live, sessions, models, logger, now,
    // The same context details as GET /api/sessions/:id (after the last turn's counts are written).
    inspectContext: async (id) => {
      await context.context.settled(id);
      return contextWire(await context.store.get(id));
    },
  });
  registerManagementRoutes(http, pool);
  registerModelRoutes(http, {
    calls, sessions, pool, threads: context.threads !== undefined,
    defaultKeepAlive: () => live.current.models.defaultKeepAlive,
    access,
    onModelUse: (model) => models.touch(model),
  });
  registerParleyRoutes(http, { pool, sessions, version: PARLEY_VERSION, startedAt, databaseDialect: database.dialect, guardian, degradedMode: config.degraded.mode, context: { store: context.store, settled: (id) => context.context.settled(id) }, access });
  await registerConversationRoutes(http, { conversations, replies, websocket: config.conversations.websocket === 'on', access });
  registerMetricsRoute(http, metrics, () => {
    metrics.cacheEntries.set(cache.size);
    metrics.cacheBytes.set(cache.bytes);
  });

  // Sockets that have not carried a request yet, with when they connected (Node's fetch opens
  // fresh ones after an aborted stream; browsers pre-connect). Node counts them neither idle nor
  // busy, so closeIdleConnections leaves them open and they would hold http.close() until the
  // client lets go. On close, one still unused after UNUSED_SOCKET_GRACE_MS is destroyed; a
  // younger one is probably about to send its request, which then gets a 503.
  const unused = new Map<Socket, number>();
  http.server.on('connection', (s: Socket) => {
    unused.set(s, Date.now());
    s.once('close', () => unused.delete(s));
  });
  http.server.on('request', (req: { socket: Socket }) => unused.delete(req.socket));

  let closing: Promise<void> | undefined;
  return {
    http,
    pool,
    sessions,
    calls,
    database,
    keys,
    usage,
    live,
    models,
    metrics,
    guardian,
    cache,
    context,
    async listen() {
      const url = await http.listen({ host: config.host, port: config.port });
      pool.startHealthChecks();
      guardian.start();
      sessions.startSweeper();
      models.start(config.upstream.healthIntervalMs);
      usage.start();
      void models.preloadConfigured().catch((err: unknown) => logger.warn({ err }, 'models.preload_failed'));
      context.threads?.startSweeper();
      logger.info({ url, upstreams: config.upstreams, database: database.dialect }, 'parley.listening');
      return url;
    },
    close() {
      closing ??= (async () => {
        calls.beginDrain();
        await context.summaries?.stop();
        for (const e of pool.entries) e.queue.close();
        // Stop accepting connections; idle keep-alive ones close now, busy ones when their reply ends.
        const httpClosed = http.close();
        const within = (ms: number) => Promise.race([calls.idle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
        if (!(await within(config.shutdown.drainTimeoutMs))) {
          logger.warn({ drainTimeoutMs: config.shutdown.drainTimeoutMs }, 'parley.drain_timeout');
          // Cut the remaining replies: their partial text is stored incomplete before the database closes.
          http.server.closeAllConnections();
          await Promise.race([replies.cancelAll(), new Promise((r) => setTimeout(r, 2_000).unref())]);
          await within(2_000);
        }
        sessions.stopSweeper();
        models.stop();
        await usage.close();
        guardian.stop();
        context.threads?.stopSweeper();
        // A connection whose reply has ended stays open (keep-alive) and would hold http.close()
        // until the client lets go of it (fastify's keepAliveTimeout is 72 s): close each one as
        // soon as it has no reply in progress.
        http.server.closeIdleConnections();
        const idleCloser = setInterval(() => {
          http.server.closeIdleConnections();
          for (const [s, since] of unused) if (Date.now() - since >= UNUSED_SOCKET_GRACE_MS) s.destroy();
        }, 25);
        await httpClosed.finally(() => clearInterval(idleCloser));
        await pool.close();
        await database.close();
        logger.info('parley.stopped');
      })();
      return closing;
    },
  };
}
