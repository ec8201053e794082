import type { LiveConfig } from '../config/live-config.js';
import type { TierLimits } from '../config/users-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Database } from '../storage/database.js';
import { normalizeModelName } from '../upstream/model-name.js';
import { BudgetService, type BudgetHold } from './budget-service.js';
import type { Caller } from './key-service.js';
import { RateLimiter } from './rate-limiter.js';
import { estimatePromptTokens, replyReservation } from './token-estimate.js';
import { UsageStore, utcDay } from './usage-store.js';

/** Key id under which anonymous callers' usage is recorded. */
export const ANONYMOUS_KEY_ID = 'anonymous';

/** How one finished request went, for accounting. */
export interface UsageOutcome {
  /** Real counts from the upstream's final chunk, when it sent them. */
  counts?: { promptTokens: number; replyTokens: number } | undefined;
  /** The upstream accepted the request (200): without counts, the prompt estimate is charged. */
  committed: boolean;
  error: boolean;
  durationMs: number;
}

type UsageOutcomeDelta = { requests: number; promptTokens: number; replyTokens: number; errors: number; durationMs: number };

/** An admitted request's place in the usage system: what it may cost, its queue class, and its settle. */
export interface UsageTicket {
  /** Fair-queue key: the key id, or `anonymous`. */
  fairKey: string;
  /** Estimated tokens (prompt + reply reservation): the fair queue's cost. */
  cost: number;
  /** Tier limits that apply (anonymous: unlimited, weight 1). */
  limits: TierLimits;
  /** Records the outcome (budget, token bucket, usage_daily). Call once; never throws. */
  settle(outcome: UsageOutcome): void;
}

const UNLIMITED: TierLimits = { tokensPerDay: null, requestsPerMinute: 0, tokensPerMinute: 0, weight: 1, maxConcurrent: 0, maxQueued: 0 };

/**
 * Admission by usage (issue 6): rate limits (token buckets) and the daily token budget of the
 * caller's tier, then accounting when the reply ends. Anonymous callers are unlimited and not
 * recorded (so Parley without keys does no extra database work per request). Usage rows are
 * written in batches every `flushIntervalMs` (and by `flush()`, e.g. at shutdown): budgets are
 * enforced from memory, the rows are what survives a restart.
 */
export class UsageService {
  readonly store: UsageStore;
  readonly budgets: BudgetService;
  private readonly rates: RateLimiter;
  private pending = new Map<string, { keyId: string; model: string; day: string; delta: UsageOutcomeDelta }>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: { database: Database; live: LiveConfig; now: () => Date; logger: Logger }) {
    this.store = new UsageStore(deps.database);
    this.budgets = new BudgetService(this.store, deps.now);
    this.rates = new RateLimiter(() => deps.now().getTime());
  }

  /** Writes usage rows every `intervalMs` (default 1 s; 0 = only on flush()). */
  start(intervalMs = 1_000): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Writes the usage recorded so far; a failed batch is kept for the next flush (and logged). Never throws. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = (async () => {
      for (const [k, row] of batch) {
        try {
          await this.store.add(row.keyId, row.model, row.day, row.delta);
        } catch (err) {
          this.deps.logger.warn({ err, keyId: row.keyId }, 'usage.record_failed');
          this.addPending(k, row);
        }
      }
    })();
    await this.flushing.finally(() => (this.flushing = undefined));
  }

  /** Stops the timer and writes what is left. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private addPending(k: string, row: { keyId: string; model: string; day: string; delta: UsageOutcomeDelta }): void {
    const cur = this.pending.get(k);
    if (!cur) {
      this.pending.set(k, { ...row, delta: { ...row.delta } });
      return;
    }
    for (const f of ['requests', 'promptTokens', 'replyTokens', 'errors', 'durationMs'] as const) cur.delta[f] += row.delta[f];
  }

  /** The limits of a tier; an unknown tier (removed at run time) falls back to the default tier. */
  limitsOf(caller: Caller | undefined): TierLimits {
    if (!caller) return UNLIMITED;
    const users = this.deps.live.current.users;
    return users.tiers[caller.tier] ?? users.tiers[users.defaultTier] ?? UNLIMITED;
  }

  /**
   * Admits one model request for `caller` (undefined = anonymous).
   * @throws ParleyError PARLEY_ERR_USAGE_BUDGET_EXCEEDED or PARLEY_ERR_USAGE_RATE_LIMITED (429);
   *   a refused request holds nothing and is not counted.
   */
  async admit(caller: Caller | undefined, endpoint: string, model: string, body: Record<string, unknown>): Promise<UsageTicket> {
    const limits = this.limitsOf(caller);
    const prompt = estimatePromptTokens(endpoint, body);
    const cost = prompt + replyReservation(endpoint, body, this.deps.live.current.users.defaultReplyTokens);
    const keyId = caller?.keyId ?? ANONYMOUS_KEY_ID;
    let hold: BudgetHold | undefined;
    if (caller) {
      hold = await this.budgets.hold(keyId, caller.tier, limits.tokensPerDay, cost);
      try {
        this.rates.take(keyId, limits, cost);
      } catch (e) {
        this.budgets.settle(hold, 0);
        throw e;
      }
    }
    const day = utcDay(this.deps.now());
    let settled = false;
    return {
      fairKey: keyId,
      cost,
      limits,
      settle: (o) => {
        if (settled) return;
        settled = true;
        const promptTokens = o.counts?.promptTokens ?? (o.committed ? prompt : 0);
        const replyTokens = o.counts?.replyTokens ?? 0;
        if (hold) this.budgets.settle(hold, promptTokens + replyTokens);
        if (caller) this.rates.adjust(keyId, limits, promptTokens + replyTokens - cost);
        if (!caller) return;
        const delta = { requests: 1, promptTokens, replyTokens, errors: o.error ? 1 : 0, durationMs: Math.round(o.durationMs) };
        const m = normalizeModelName(model);
        this.addPending(`${keyId}\u0000${day}\u0000${m}`, { keyId, model: m, day, delta });
      },
    };
  }
}
