import { z } from 'zod';
import { adminSchema, authSchema, modelsSchema, usersSchema } from './users-schema.js';

/**
 * Parley's configuration: one zod schema, frozen after validation.
 * Sources, later ones winning: defaults < config file (JSON, `--config`/`PARLEY_CONFIG`) <
 * `PARLEY_*` environment variables < command-line flags. `docs/configuration.md` lists every
 * setting; a test keeps it equal to `SETTINGS` below.
 */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname.replace(/\/+$/, '') === '';
  } catch {
    return false;
  }
}, 'must be an http(s) URL with no path, e.g. http://127.0.0.1:11434');

const ms = (def: number) => z.number().int().min(0).default(def);

export const configSchema = z
  .object({
    /** Address to bind. Default 127.0.0.1 (loopback only). */
    host: z.string().min(1).default('127.0.0.1'),
    /** TCP port; 0 picks a free one. Default 8000. */
    port: z.number().int().min(0).max(65535).default(8000),
    /** Ollama servers Parley stands in front of, in order of preference. Default one local Ollama. */
    upstreams: z.array(httpUrl).min(1).default(['http://127.0.0.1:11434']),
    /** `postgres://…` selects Postgres; anything else is a SQLite file path (or `:memory:`). */
    databaseUrl: z.string().min(1).default('./data/parley.db'),
    /** pino level. Default info. */
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /** Largest request body accepted, in bytes (blob uploads are streamed and exempt). Default 64 MiB. */
    bodyLimitBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
    queue: z
      .object({
        /** Requests one upstream runs at once (Ollama's OLLAMA_NUM_PARALLEL). Default 1. */
        slotsPerUpstream: z.number().int().min(1).max(1024).default(1),
        /** Requests that may wait per upstream before 503 "server busy" (OLLAMA_MAX_QUEUE). Default 512. */
        maxDepth: z.number().int().min(0).default(512),
        /** Longest wait for a slot before a 503, in ms. Default 10 minutes. */
        maxWaitMs: ms(600_000),
        /** Least time between two position updates sent to one opted-in client, in ms. Default 250. */
        positionUpdateIntervalMs: ms(250),
        /** Fair queueing between keys (weighted by tier, by tokens); false = first come, first served. Default true. */
        fair: z.boolean().default(true),
        /** Switch-aware scheduling: a request for a model not loaded may be passed over for loaded-model requests for at most this long, in ms; 0 = off. Default 5 s. */
        switchMaxWaitMs: ms(5_000),
      })
      .prefault({}),
    upstream: z
      .object({
        /** TCP connect timeout, in ms. Default 5 s. */
        connectTimeoutMs: ms(5_000),
        /** Longest wait for the response headers (first chunk), allowing a cold model load, in ms. Default 5 minutes. */
        headersTimeoutMs: ms(300_000),
        /** Longest silence between two chunks of a reply, in ms. Default 5 minutes. */
        bodyTimeoutMs: ms(300_000),
        /** Interval of the health check of each upstream, in ms. Default 5 s. */
        healthIntervalMs: ms(5_000),
        /** Interval of the health checks while some upstream is down or its breaker open, in ms. Default 500. */
        healthIntervalDownMs: ms(500),
        /** Connections kept per upstream. Default 128. */
        connections: z.number().int().min(1).default(128),
      })
      .prefault({}),
    sessions: z
      .object({
        /** A session idle this long is archived (never deleted), in ms. Default 7 days. */
        idleExpiryMs: ms(7 * 24 * 3_600_000),
        /** How often idle sessions are looked for, in ms. Default 1 minute. */
        sweepIntervalMs: ms(60_000),
        /** How often a streaming reply's partial text is saved, in ms (at most a tenth later: see partialSaveDelayMs). Default 1 s. */
        partialSaveIntervalMs: ms(1_000),
      })
      .prefault({}),
    resilience: z
      .object({
        /** Retries of a model request that failed before its first byte reached the client. Default 2. */
        maxRetries: z.number().int().min(0).max(10).default(2),
        /** First retry delay (exponential backoff with jitter), in ms. Default 100. */
        retryBaseDelayMs: ms(100),
        /** Largest retry delay, in ms. Default 2 s. */
        retryMaxDelayMs: ms(2_000),
        /** Largest upstream Retry-After honoured before a retry, in ms. Default 5 s. */
        retryAfterCapMs: ms(5_000),
        /** Consecutive upstream failures that open its circuit breaker. Default 5. */
        breakerThreshold: z.number().int().min(1).default(5),
        /** Time an open breaker waits before letting one probe request through, in ms. Default 1 s. */
        breakerHalfOpenAfterMs: ms(1_000),
      })
      .prefault({}),
    degraded: z
      .object({
        /** What Parley answers when no upstream can serve a model: error (503), cache or static. Default error. */
        mode: z.enum(['error', 'cache', 'static']).default('error'),
        /** Retry-After sent with a degraded answer, in ms (rounded up to seconds). Default 10 s. */
        retryAfterMs: ms(10_000),
        /** Static mode: first line of a conversation's first turn. */
        staticGreeting: z.string().default('Hello!'),
        /** Static mode: the apology. */
        staticApology: z.string().default("I'm sorry, the language model is unavailable right now."),
        /** Static mode: the retry line. */
        staticRetry: z.string().default('Please try again in a minute.'),
      })
      .prefault({}),
    cache: z
      .object({
        /** Answers kept at most (least recently used go first). Default 1000. */
        maxEntries: z.number().int().min(0).default(1_000),
        /** Bytes of answers kept at most. Default 16 MiB. */
        maxBytes: z.number().int().min(0).default(16 * 1024 * 1024),
        /** Degraded mode "cache": how old an identical answer may be, in ms. Default 1 hour. */
        degradedTtlMs: ms(3_600_000),
        /** Normal operation: serve identical deterministic requests (temperature 0 or a seed) from the cache for this long, in ms; 0 = off. Default 0. */
        deterministicTtlMs: ms(0),
      })
      .prefault({}),
    memory: z
      .object({
        /** Messages a session may hold before new turns are refused. Default 10 000. */
        sessionMaxMessages: z.number().int().min(1).default(10_000),
        /** Bytes of stored history a session may hold before new turns are refused. Default 32 MiB. */
        sessionMaxBytes: z.number().int().min(1).default(32 * 1024 * 1024),
        /** Bytes waiting for one slow client before it is cut off and the upstream aborted. Default 1 MiB. */
        streamBufferMaxBytes: z.number().int().min(1024).default(1024 * 1024),
        /** Process RSS above which caches are evicted, in bytes; 0 = off. Default 1.5 GiB. */
        evictAboveRssBytes: z.number().int().min(0).default(1536 * 1024 * 1024),
        /** Process RSS above which new model requests are refused with 503, in bytes; 0 = off. Default 2 GiB. */
        shedAboveRssBytes: z.number().int().min(0).default(2048 * 1024 * 1024),
        /** How often memory is sampled, in ms. Default 1 s. */
        sampleIntervalMs: z.number().int().min(10).default(1_000),
      })
      .prefault({}),
    auth: authSchema,
    admin: adminSchema,
    users: usersSchema,
    models: modelsSchema,
    conversations: z
      .object({
        /** Largest user content (message text, title) the conversations API accepts, in bytes (seed 003's MAX_LOG_BYTES). Default 512 KiB. */
        maxMessageBytes: z.number().int().min(1).default(524_288),
        /** The WebSocket endpoint /api/conversations/:id/ws: on or off. Default on. */
        websocket: z.enum(['on', 'off']).default('on'),
        /** A reply whose client went away keeps generating this long for a reconnect, then is cancelled and stored incomplete, in ms. Default 30 s. */
        reconnectGraceMs: ms(30_000),
        /** A finished reply's events stay replayable (Last-Event-ID) this long, in ms. Default 5 minutes. */
        replyRetentionMs: ms(300_000),
        /** Events one reply keeps for replay; older ones are dropped past it. Default 100 000. */
        replyBufferMaxEvents: z.number().int().min(16).default(100_000),
      })
      .prefault({}),
    context: z
      .object({
        /** Context window when neither options.num_ctx nor the upstream's /api/show gives one, in tokens. Default 4096. */
        defaultWindowTokens: z.number().int().min(256).default(4096),
        /** Upper bound on the window Parley fits history into, in tokens; 0 = none. Default 0. */
        windowCapTokens: z.number().int().min(0).default(0),
        /** Tokens kept free for the reply when the request has no options.num_predict. Default 512. */
        replyReserveTokens: z.number().int().min(0).default(512),
        /** Running summary of history that fell out of the window: on or off. Default on. */
        summary: z.enum(['on', 'off']).default('on'),
        /** Model that writes summaries; empty = the session's own model. Default empty. */
        summaryModel: z.string().default(''),
        /** Longest summary, in tokens (sent as num_predict). Default 256. */
        summaryMaxTokens: z.number().int().min(16).default(256),
      })
      .prefault({}),
    threads: z
      .object({
        /** /api/chat without a session id: off (store nothing, as Ollama) or thread (append to the caller's matching conversation). Default off. */
        mode: z.enum(['off', 'thread']).default('off'),
        /** A threaded conversation idle this long is no longer continued and is deleted, in ms. Default 24 hours. */
        retentionMs: ms(24 * 3_600_000),
      })
      .prefault({}),
    shutdown: z
      .object({
        /** On SIGTERM, how long in-flight replies may take to finish, in ms. Default 30 s. */
        drainTimeoutMs: ms(30_000),
      })
      .prefault({}),
  })
  .strict();

export type ParleyConfig = Readonly<z.infer<typeof configSchema>>;
export type ConfigInput = z.input<typeof configSchema>;

/** One row per setting that has an environment variable or flag: drives parsing and the docs. */
export interface SettingSpec {
  /** Dotted path in the schema, e.g. `queue.maxDepth`. */
  path: string;
  env: string;
  flag?: string;
  kind: 'string' | 'int' | 'list' | 'bool';
  unit: string;
  default: string;
  description: string;
}

export const SETTINGS: readonly SettingSpec[] = [
  { path: 'host', env: 'PARLEY_HOST', flag: '--host', kind: 'string', unit: '', default: '127.0.0.1', description: 'Address to bind.' },
  { path: 'port', env: 'PARLEY_PORT', flag: '--port', kind: 'int', unit: '', default: '8000', description: 'TCP port (0 picks a free one).' },
  { path: 'upstreams', env: 'PARLEY_UPSTREAMS', flag: '--upstream', kind: 'list', unit: 'URLs, comma-separated', default: 'http://127.0.0.1:11434', description: 'Ollama servers, in order of preference.' },
  { path: 'databaseUrl', env: 'PARLEY_DATABASE_URL', flag: '--database', kind: 'string', unit: '', default: './data/parley.db', description: 'SQLite file path or `:memory:`; a `postgres://` URL selects Postgres.' },
  { path: 'logLevel', env: 'PARLEY_LOG_LEVEL', flag: '--log-level', kind: 'string', unit: '', default: 'info', description: 'fatal, error, warn, info, debug, trace or silent.' },
  { path: 'bodyLimitBytes', env: 'PARLEY_BODY_LIMIT_BYTES', kind: 'int', unit: 'bytes', default: '67108864', description: 'Largest JSON request body; blob uploads stream and are exempt.' },
  { path: 'queue.slotsPerUpstream', env: 'PARLEY_QUEUE_SLOTS', kind: 'int', unit: 'requests', default: '1', description: 'Model requests one upstream runs at once (OLLAMA_NUM_PARALLEL).' },
  { path: 'queue.maxDepth', env: 'PARLEY_QUEUE_MAX_DEPTH', kind: 'int', unit: 'requests', default: '512', description: 'Waiting requests per upstream before 503 "server busy".' },
  { path: 'queue.maxWaitMs', env: 'PARLEY_QUEUE_MAX_WAIT_MS', kind: 'int', unit: 'ms', default: '600000', description: 'Longest wait for a slot before a 503.' },
  { path: 'queue.positionUpdateIntervalMs', env: 'PARLEY_QUEUE_POSITION_UPDATE_INTERVAL_MS', kind: 'int', unit: 'ms', default: '250', description: 'Least time between two position updates to one client.' },
  { path: 'queue.fair', env: 'PARLEY_QUEUE_FAIR', kind: 'bool', unit: '', default: 'true', description: 'Share each upstream\'s slots fairly between keys (weighted by tier, by tokens); false = first come, first served.' },
  { path: 'queue.switchMaxWaitMs', env: 'PARLEY_QUEUE_SWITCH_MAX_WAIT_MS', kind: 'int', unit: 'ms', default: '5000', description: 'Longest a request for a model that is not loaded may be passed over for requests for the loaded model; 0 = no switch-aware scheduling.' },
  { path: 'upstream.connectTimeoutMs', env: 'PARLEY_UPSTREAM_CONNECT_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '5000', description: 'TCP connect timeout to an upstream.' },
  { path: 'upstream.headersTimeoutMs', env: 'PARLEY_UPSTREAM_HEADERS_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '300000', description: 'Wait for the first byte of a reply (covers a cold model load).' },
  { path: 'upstream.bodyTimeoutMs', env: 'PARLEY_UPSTREAM_BODY_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '300000', description: 'Longest silence between two chunks of a reply.' },
  { path: 'upstream.healthIntervalMs', env: 'PARLEY_UPSTREAM_HEALTH_INTERVAL_MS', kind: 'int', unit: 'ms', default: '5000', description: 'Interval of the upstream health checks.' },
  { path: 'upstream.healthIntervalDownMs', env: 'PARLEY_UPSTREAM_HEALTH_INTERVAL_DOWN_MS', kind: 'int', unit: 'ms', default: '500', description: 'Health check interval while an upstream is down or its breaker open (recovery within 2 s).' },
  { path: 'upstream.connections', env: 'PARLEY_UPSTREAM_CONNECTIONS', kind: 'int', unit: 'connections', default: '128', description: 'Keep-alive connections per upstream.' },
  { path: 'sessions.idleExpiryMs', env: 'PARLEY_SESSION_IDLE_EXPIRY_MS', kind: 'int', unit: 'ms', default: '604800000', description: 'A session idle this long is archived (kept, never deleted).' },
  { path: 'sessions.sweepIntervalMs', env: 'PARLEY_SESSION_SWEEP_INTERVAL_MS', kind: 'int', unit: 'ms', default: '60000', description: 'How often idle sessions are looked for.' },
  { path: 'sessions.partialSaveIntervalMs', env: 'PARLEY_SESSION_PARTIAL_SAVE_INTERVAL_MS', kind: 'int', unit: 'ms', default: '1000', description: 'How often a streaming reply\'s partial text is saved (at most a tenth later, so that streams due together share one commit).' },
  { path: 'resilience.maxRetries', env: 'PARLEY_RETRY_MAX_RETRIES', kind: 'int', unit: 'retries', default: '2', description: 'Retries of a model request that failed before its first byte reached the client (connection refused/reset, 502/503/504, timeouts; never a 4xx).' },
  { path: 'resilience.retryBaseDelayMs', env: 'PARLEY_RETRY_BASE_DELAY_MS', kind: 'int', unit: 'ms', default: '100', description: 'First retry delay; exponential backoff with jitter.' },
  { path: 'resilience.retryMaxDelayMs', env: 'PARLEY_RETRY_MAX_DELAY_MS', kind: 'int', unit: 'ms', default: '2000', description: 'Largest retry delay.' },
  { path: 'resilience.retryAfterCapMs', env: 'PARLEY_RETRY_AFTER_CAP_MS', kind: 'int', unit: 'ms', default: '5000', description: 'Largest upstream Retry-After honoured before a retry.' },
  { path: 'resilience.breakerThreshold', env: 'PARLEY_BREAKER_THRESHOLD', kind: 'int', unit: 'failures', default: '5', description: 'Consecutive failures that open an upstream\'s circuit breaker.' },
  { path: 'resilience.breakerHalfOpenAfterMs', env: 'PARLEY_BREAKER_HALF_OPEN_AFTER_MS', kind: 'int', unit: 'ms', default: '1000', description: 'Time an open breaker waits before one probe request.' },
  { path: 'degraded.mode', env: 'PARLEY_DEGRADED_MODE', kind: 'string', unit: '', default: 'error', description: 'When no upstream can serve a model: `error` (503 + Retry-After), `cache` (a recent identical answer, else error) or `static` (the texts below).' },
  { path: 'degraded.retryAfterMs', env: 'PARLEY_DEGRADED_RETRY_AFTER_MS', kind: 'int', unit: 'ms', default: '10000', description: 'Retry-After of degraded answers (rounded up to seconds).' },
  { path: 'degraded.staticGreeting', env: 'PARLEY_DEGRADED_STATIC_GREETING', kind: 'string', unit: '', default: 'Hello!', description: 'Static mode: opens the reply to a conversation\'s first message.' },
  { path: 'degraded.staticApology', env: 'PARLEY_DEGRADED_STATIC_APOLOGY', kind: 'string', unit: '', default: "I'm sorry, the language model is unavailable right now.", description: 'Static mode: the apology.' },
  { path: 'degraded.staticRetry', env: 'PARLEY_DEGRADED_STATIC_RETRY', kind: 'string', unit: '', default: 'Please try again in a minute.', description: 'Static mode: the retry line.' },
  { path: 'cache.maxEntries', env: 'PARLEY_CACHE_MAX_ENTRIES', kind: 'int', unit: 'answers', default: '1000', description: 'Response cache size bound (least recently used evicted).' },
  { path: 'cache.maxBytes', env: 'PARLEY_CACHE_MAX_BYTES', kind: 'int', unit: 'bytes', default: '16777216', description: 'Response cache byte bound.' },
  { path: 'cache.degradedTtlMs', env: 'PARLEY_CACHE_DEGRADED_TTL_MS', kind: 'int', unit: 'ms', default: '3600000', description: 'Degraded mode `cache`: the oldest identical answer served.' },
  { path: 'cache.deterministicTtlMs', env: 'PARLEY_CACHE_DETERMINISTIC_TTL_MS', kind: 'int', unit: 'ms', default: '0', description: 'Normal operation: identical deterministic requests (temperature 0 or a seed, no session) are answered from the cache this long; 0 = off.' },
  { path: 'memory.sessionMaxMessages', env: 'PARLEY_SESSION_MAX_MESSAGES', kind: 'int', unit: 'messages', default: '10000', description: 'Stored messages per session before new turns are refused (413).' },
  { path: 'memory.sessionMaxBytes', env: 'PARLEY_SESSION_MAX_BYTES', kind: 'int', unit: 'bytes', default: '33554432', description: 'Stored history bytes per session before new turns are refused (413).' },
  { path: 'memory.streamBufferMaxBytes', env: 'PARLEY_STREAM_BUFFER_MAX_BYTES', kind: 'int', unit: 'bytes', default: '1048576', description: 'Bytes waiting for one slow client before it is cut off and the upstream aborted.' },
  { path: 'memory.evictAboveRssBytes', env: 'PARLEY_MEMORY_EVICT_ABOVE_RSS_BYTES', kind: 'int', unit: 'bytes', default: '1610612736', description: 'Process RSS above which caches are emptied; 0 = off.' },
  { path: 'memory.shedAboveRssBytes', env: 'PARLEY_MEMORY_SHED_ABOVE_RSS_BYTES', kind: 'int', unit: 'bytes', default: '2147483648', description: 'Process RSS above which new model requests get 503 while running ones finish; 0 = off.' },
  { path: 'memory.sampleIntervalMs', env: 'PARLEY_MEMORY_SAMPLE_INTERVAL_MS', kind: 'int', unit: 'ms', default: '1000', description: 'How often process memory is sampled.' },
  { path: 'auth.mode', env: 'PARLEY_AUTH_MODE', kind: 'string', unit: '', default: 'auto', description: '`auto` (keys required once one exists), `off` (everyone anonymous, like Ollama) or `required`. Parley will not start anonymous on a non-loopback host unless this is `off`.' },
  { path: 'admin.token', env: 'PARLEY_ADMIN_TOKEN', kind: 'string', unit: '', default: '', description: 'Bearer token that opens /admin (besides admin keys); empty = admin keys only.' },
  { path: 'users.defaultTier', env: 'PARLEY_DEFAULT_TIER', kind: 'string', unit: '', default: 'free', description: 'Tier of new keys when none is given (tiers themselves: config file `users.tiers`).' },
  { path: 'users.defaultReplyTokens', env: 'PARLEY_DEFAULT_REPLY_TOKENS', kind: 'int', unit: 'tokens', default: '512', description: 'Reply tokens reserved against budgets when a request sets no num_predict.' },
  { path: 'models.preload', env: 'PARLEY_MODELS_PRELOAD', kind: 'list', unit: 'model names, comma-separated', default: '', description: 'Models loaded at start-up on the upstreams that list them.' },
  { path: 'models.defaultKeepAlive', env: 'PARLEY_MODELS_DEFAULT_KEEP_ALIVE', kind: 'string', unit: 'Ollama duration', default: '', description: 'keep_alive added to model requests that have none (`10m`, `3600`, `-1`); empty = Ollama\'s default.' },
  { path: 'models.maxLoadedBytes', env: 'PARLEY_MODELS_MAX_LOADED_BYTES', kind: 'int', unit: 'bytes', default: '0', description: 'Loaded model bytes per upstream above which the least recently used idle model is unloaded; 0 = off.' },
  { path: 'conversations.maxMessageBytes', env: 'PARLEY_CONVERSATION_MAX_MESSAGE_BYTES', kind: 'int', unit: 'bytes', default: '524288', description: 'Largest user content (message text, title) the conversations API accepts; more is 413.' },
  { path: 'conversations.websocket', env: 'PARLEY_CONVERSATION_WEBSOCKET', kind: 'string', unit: '', default: 'on', description: '`on` or `off`: the WebSocket endpoint /api/conversations/:id/ws.' },
  { path: 'conversations.reconnectGraceMs', env: 'PARLEY_CONVERSATION_RECONNECT_GRACE_MS', kind: 'int', unit: 'ms', default: '30000', description: 'A reply whose client went away keeps generating this long for a reconnect (Last-Event-ID), then is cancelled and stored incomplete.' },
  { path: 'conversations.replyRetentionMs', env: 'PARLEY_CONVERSATION_REPLY_RETENTION_MS', kind: 'int', unit: 'ms', default: '300000', description: 'How long a finished reply\'s events can still be replayed with Last-Event-ID.' },
  { path: 'conversations.replyBufferMaxEvents', env: 'PARLEY_CONVERSATION_REPLY_BUFFER_MAX_EVENTS', kind: 'int', unit: 'events', default: '100000', description: 'Events one reply keeps for replay (the oldest are dropped past it).' },
  { path: 'context.defaultWindowTokens', env: 'PARLEY_CONTEXT_DEFAULT_WINDOW_TOKENS', kind: 'int', unit: 'tokens', default: '4096', description: 'Context window used when neither `options.num_ctx` nor the upstream\'s `/api/show` (`<arch>.context_length`) gives one.' },
  { path: 'context.windowCapTokens', env: 'PARLEY_CONTEXT_WINDOW_CAP_TOKENS', kind: 'int', unit: 'tokens', default: '0', description: 'Upper bound on the window history is fitted into (set it to OLLAMA_CONTEXT_LENGTH when Ollama runs models below their training context); 0 = none.' },
  { path: 'context.replyReserveTokens', env: 'PARLEY_CONTEXT_REPLY_RESERVE_TOKENS', kind: 'int', unit: 'tokens', default: '512', description: 'Tokens left free for the reply when the request has no `options.num_predict` (which is used instead).' },
  { path: 'context.summary', env: 'PARLEY_CONTEXT_SUMMARY', kind: 'string', unit: '', default: 'on', description: '`on`: history that falls out of the window is folded into a running summary (written by the upstream in the background, when no user request waits) and sent as a system message; `off`: it is just dropped.' },
  { path: 'context.summaryModel', env: 'PARLEY_CONTEXT_SUMMARY_MODEL', kind: 'string', unit: '', default: '', description: 'Model that writes summaries; empty = the session\'s own model.' },
  { path: 'context.summaryMaxTokens', env: 'PARLEY_CONTEXT_SUMMARY_MAX_TOKENS', kind: 'int', unit: 'tokens', default: '256', description: 'Longest summary (sent as `num_predict`).' },
  { path: 'threads.mode', env: 'PARLEY_THREADS_MODE', kind: 'string', unit: '', default: 'off', description: '`/api/chat` without a session id: `off` stores nothing (as Ollama); `thread` stores the conversation and, when a caller re-sends its history plus a new message, appends the turn to that conversation (id `thread-…` in `X-Session-Id`).' },
  { path: 'threads.retentionMs', env: 'PARLEY_THREADS_RETENTION_MS', kind: 'int', unit: 'ms', default: '86400000', description: 'A threaded conversation idle this long is no longer continued and is deleted with its messages.' },
  { path: 'shutdown.drainTimeoutMs', env: 'PARLEY_DRAIN_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '30000', description: 'On SIGTERM, how long in-flight replies may take to finish.' },
];
