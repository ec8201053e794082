import { ParleyError } from '../errors/parley-error.js';
import { nextUtcMidnight, utcDay, type UsageStore } from './usage-store.js';

/** A hold on part of a key's daily budget, made at admission and settled when the reply ends. */
export interface BudgetHold {
  keyId: string;
  day: string;
  tokens: number;
}

interface DayState {
  day: string;
  /** Tokens of finished requests today (from usage_daily at first touch, then kept here). */
  used: number;
  /** Tokens held by requests admitted and not finished yet. */
  held: number;
}

/**
 * Daily token budgets per key (UTC days). A request is admitted when the key's used + held tokens
 * plus its own estimate (prompt + reply reservation) fit in the tier's `tokensPerDay`; the hold is
 * replaced by the upstream's real counts when the reply ends. The day's starting point is read
 * from the database, so a restart keeps counting; holds live in this process.
 */
export class BudgetService {
  private readonly days = new Map<string, DayState>();
  private readonly loading = new Map<string, Promise<DayState>>();

  constructor(private readonly store: UsageStore, private readonly now: () => Date) {}

  /**
   * Holds `tokens` of the key's budget for today; `limit` null = unlimited (still counted).
   * @throws ParleyError PARLEY_ERR_USAGE_BUDGET_EXCEEDED (429) with the numbers (used / budget),
   *   the reset time (next UTC midnight) and Retry-After; nothing is held then.
   */
  async hold(keyId: string, tier: string, limit: number | null, tokens: number): Promise<BudgetHold> {
    const t = this.now();
    const day = utcDay(t);
    const s = await this.state(keyId, day);
    if (limit !== null && s.used + s.held + tokens > limit) {
      const reset = nextUtcMidnight(t);
      const used = s.used + s.held;
      const retryAfterS = Math.max(1, Math.ceil((reset.getTime() - t.getTime()) / 1000));
      throw new ParleyError(
        'PARLEY_ERR_USAGE_BUDGET_EXCEEDED',
        `token budget exceeded: used ${used} of ${limit} tokens today (tier ${tier}); this request needs up to ${tokens}; the budget resets at ${reset.toISOString()}`,
        { headers: { 'Retry-After': String(retryAfterS), 'X-Parley-Budget-Used': String(used), 'X-Parley-Budget-Limit': String(limit), 'X-Parley-Budget-Reset': reset.toISOString() } },
      );
    }
    s.held += tokens;
    return { keyId, day, tokens };
  }

  /** Replaces a hold by the tokens really used (0 when the request used none). Idempotent per hold object. */
  settle(hold: BudgetHold, actualTokens: number): void {
    const s = this.days.get(hold.keyId);
    if (!s || s.day !== hold.day || hold.tokens < 0) return;
    s.held = Math.max(0, s.held - hold.tokens);
    s.used += actualTokens;
    hold.tokens = -1;
  }

  /** Used (finished + held) tokens of a key today, for /admin. */
  async usedToday(keyId: string): Promise<number> {
    const s = await this.state(keyId, utcDay(this.now()));
    return s.used + s.held;
  }

  private async state(keyId: string, day: string): Promise<DayState> {
    const cur = this.days.get(keyId);
    if (cur?.day === day) return cur;
    const k = `${keyId}\u0000${day}`;
    let p = this.loading.get(k);
    if (!p) {
      p = this.store.tokensOn(keyId, day).then((used) => {
        const s: DayState = { day, used, held: 0 };
        const again = this.days.get(keyId);
        if (again?.day === day) return again;
        this.days.set(keyId, s);
        return s;
      });
      this.loading.set(k, p);
      void p.finally(() => this.loading.delete(k)).catch(() => undefined);
    }
    return p;
  }
}
