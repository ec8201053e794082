import { z } from 'zod';

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
        /** How often a streaming reply's partial text is saved, in ms. Default 1 s. */
        partialSaveIntervalMs: ms(1_000),
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
  kind: 'string' | 'int' | 'list';
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
  { path: 'upstream.connectTimeoutMs', env: 'PARLEY_UPSTREAM_CONNECT_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '5000', description: 'TCP connect timeout to an upstream.' },
  { path: 'upstream.headersTimeoutMs', env: 'PARLEY_UPSTREAM_HEADERS_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '300000', description: 'Wait for the first byte of a reply (covers a cold model load).' },
  { path: 'upstream.bodyTimeoutMs', env: 'PARLEY_UPSTREAM_BODY_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '300000', description: 'Longest silence between two chunks of a reply.' },
  { path: 'upstream.healthIntervalMs', env: 'PARLEY_UPSTREAM_HEALTH_INTERVAL_MS', kind: 'int', unit: 'ms', default: '5000', description: 'Interval of the upstream health checks.' },
  { path: 'upstream.connections', env: 'PARLEY_UPSTREAM_CONNECTIONS', kind: 'int', unit: 'connections', default: '128', description: 'Keep-alive connections per upstream.' },
  { path: 'sessions.idleExpiryMs', env: 'PARLEY_SESSION_IDLE_EXPIRY_MS', kind: 'int', unit: 'ms', default: '604800000', description: 'A session idle this long is archived (kept, never deleted).' },
  { path: 'sessions.sweepIntervalMs', env: 'PARLEY_SESSION_SWEEP_INTERVAL_MS', kind: 'int', unit: 'ms', default: '60000', description: 'How often idle sessions are looked for.' },
  { path: 'sessions.partialSaveIntervalMs', env: 'PARLEY_SESSION_PARTIAL_SAVE_INTERVAL_MS', kind: 'int', unit: 'ms', default: '1000', description: 'How often a streaming reply\'s partial text is saved.' },
  { path: 'shutdown.drainTimeoutMs', env: 'PARLEY_DRAIN_TIMEOUT_MS', kind: 'int', unit: 'ms', default: '30000', description: 'On SIGTERM, how long in-flight replies may take to finish.' },
];
