import { z } from 'zod';

/**
 * Settings of issue 6 (users, keys, budgets, rate limits, fair queueing, model management), kept
 * apart from schema.ts so it stays readable. Part of the one `configSchema`.
 */

/** One tier's limits. 0 (or null for the budget) means unlimited. */
export const tierSchema = z
  .object({
    /** Tokens (prompt + reply) a key may use per UTC day; null = unlimited. */
    tokensPerDay: z.number().int().min(0).nullable(),
    /** Requests per minute per key (token bucket, bursts up to this many); 0 = unlimited. */
    requestsPerMinute: z.number().int().min(0).default(0),
    /** Tokens per minute per key (estimated at admission); 0 = unlimited. */
    tokensPerMinute: z.number().int().min(0).default(0),
    /** Share of an upstream's slots when keys compete (fair queue weight), 1-100. */
    weight: z.number().int().min(1).max(100).default(1),
    /** Requests of one key running at once on one upstream; 0 = unlimited. */
    maxConcurrent: z.number().int().min(0).default(0),
    /** Requests of one key waiting on one upstream; 0 = unlimited (queue.maxDepth still applies). */
    maxQueued: z.number().int().min(0).default(0),
  })
  .strict();

export type TierLimits = z.infer<typeof tierSchema>;

/** Seed 000: free 10,000 tokens/day, premium 100,000, enterprise unlimited. */
export const DEFAULT_TIERS: Record<string, TierLimits> = {
  free: { tokensPerDay: 10_000, requestsPerMinute: 60, tokensPerMinute: 20_000, weight: 1, maxConcurrent: 2, maxQueued: 32 },
  premium: { tokensPerDay: 100_000, requestsPerMinute: 300, tokensPerMinute: 100_000, weight: 2, maxConcurrent: 4, maxQueued: 128 },
  enterprise: { tokensPerDay: null, requestsPerMinute: 0, tokensPerMinute: 0, weight: 4, maxConcurrent: 0, maxQueued: 0 },
};

export const authSchema = z
  .object({
    /**
     * `auto` (default): keys are required as soon as one active key exists, anonymous before.
     * `off`: every caller is anonymous, Authorization is ignored (like Ollama). `required`: always.
     * Parley refuses to start anonymous (auto without keys) on a non-loopback host; `off` is the
     * explicit opt-in.
     */
    mode: z.enum(['auto', 'off', 'required']).default('auto'),
  })
  .prefault({});

export const adminSchema = z
  .object({
    /** Bearer token for /admin (env PARLEY_ADMIN_TOKEN); empty = only admin keys. Compared in constant time. */
    token: z.string().default(''),
  })
  .prefault({});

export const usersSchema = z
  .object({
    /** Tiers by name. Default free / premium / enterprise (seed 000). */
    tiers: z.record(z.string().regex(/^[a-z0-9_-]{1,32}$/), tierSchema).default(DEFAULT_TIERS),
    /** Tier of new keys when none is given. Default free. */
    defaultTier: z.string().default('free'),
    /** Reply tokens reserved at admission when the request sets no num_predict. Default 512. */
    defaultReplyTokens: z.number().int().min(1).default(512),
  })
  .prefault({})
  .refine((u) => u.tiers[u.defaultTier] !== undefined, { message: 'defaultTier must name a tier', path: ['defaultTier'] });

export const modelsSchema = z
  .object({
    /** Models loaded on every upstream that lists them at start-up (an empty request with keep_alive). */
    preload: z.array(z.string().min(1)).default([]),
    /** keep_alive added to model requests that carry none (Ollama duration such as `10m`, or seconds; `-1` = for ever); empty = Ollama's own default. */
    defaultKeepAlive: z.string().default(''),
    /** Bytes of loaded models per upstream (sum of /api/ps `size`) above which the least recently used idle model is unloaded; 0 = off. */
    maxLoadedBytes: z.number().int().min(0).default(0),
  })
  .prefault({});
