import { ParleyError } from '../errors/parley-error.js';

/** Per-minute limits of one key; 0 = unlimited. */
export interface RateLimits {
  requestsPerMinute: number;
  tokensPerMinute: number;
}

interface Bucket {
  /** Tokens in the bucket (may go below 0 after reconciliation). */
  level: number;
  updatedAtMs: number;
}

/**
 * Token buckets per key: one for requests (capacity = requests per minute, refilled at that rate
 * per 60 s), one for tokens (capacity = tokens per minute). A request needs 1 request token and
 * its estimated tokens (capped at the capacity, so a large request passes when the bucket is full);
 * both buckets are checked before either is charged. State is in memory (per Parley process).
 */
export class RateLimiter {
  private readonly requests = new Map<string, Bucket>();
  private readonly tokens = new Map<string, Bucket>();

  constructor(private readonly nowMs: () => number) {}

  /**
   * Charges one request of `cost` tokens to `keyId`.
   * @throws ParleyError PARLEY_ERR_USAGE_RATE_LIMITED (429) with Retry-After (s) and X-RateLimit-*
   *   headers when either bucket is short; nothing is charged then.
   */
  take(keyId: string, limits: RateLimits, cost: number): void {
    const t = this.nowMs();
    const req = limits.requestsPerMinute > 0 ? this.refill(this.requests, keyId, limits.requestsPerMinute, t) : undefined;
    const tok = limits.tokensPerMinute > 0 ? this.refill(this.tokens, keyId, limits.tokensPerMinute, t) : undefined;
    const needTokens = Math.min(cost, limits.tokensPerMinute);
    const reqShort = req !== undefined && req.level < 1;
    const tokShort = tok !== undefined && tok.level < needTokens;
    if (reqShort || tokShort) {
      const waitReq = reqShort ? ((1 - req.level) * 60) / limits.requestsPerMinute : 0;
      const waitTok = tokShort ? ((needTokens - tok.level) * 60) / limits.tokensPerMinute : 0;
      const retryAfterS = Math.max(1, Math.ceil(Math.max(waitReq, waitTok)));
      const which = reqShort ? `${limits.requestsPerMinute} requests per minute` : `${limits.tokensPerMinute} tokens per minute`;
      throw new ParleyError('PARLEY_ERR_USAGE_RATE_LIMITED', `rate limit exceeded: this key may send ${which}; retry in ${retryAfterS} s`, {
        headers: { 'Retry-After': String(retryAfterS), ...this.headers(limits, req, tok, reqShort ? 'requests' : 'tokens') },
      });
    }
    if (req) req.level -= 1;
    if (tok) tok.level -= needTokens;
  }

  /** Corrects the token bucket once the real count is known (`delta` = actual - estimated). */
  adjust(keyId: string, limits: RateLimits, delta: number): void {
    if (limits.tokensPerMinute <= 0 || delta === 0) return;
    const b = this.refill(this.tokens, keyId, limits.tokensPerMinute, this.nowMs());
    b.level = Math.min(limits.tokensPerMinute, b.level - delta);
  }

  private refill(map: Map<string, Bucket>, keyId: string, perMinute: number, t: number): Bucket {
    let b = map.get(keyId);
    if (!b) {
      b = { level: perMinute, updatedAtMs: t };
      map.set(keyId, b);
    }
    b.level = Math.min(perMinute, b.level + ((t - b.updatedAtMs) * perMinute) / 60_000);
    b.updatedAtMs = t;
    return b;
  }

  private headers(limits: RateLimits, req: Bucket | undefined, tok: Bucket | undefined, hit: 'requests' | 'tokens'): Record<string, string> {
    const h: Record<string, string> = {};
    const reset = (b: Bucket, perMinute: number) => String(Math.max(0, Math.ceil(((perMinute - b.level) * 60) / perMinute)));
    if (req) {
      h['X-RateLimit-Limit-Requests'] = String(limits.requestsPerMinute);
      h['X-RateLimit-Remaining-Requests'] = String(Math.max(0, Math.floor(req.level)));
      h['X-RateLimit-Reset-Requests'] = reset(req, limits.requestsPerMinute);
    }
    if (tok) {
      h['X-RateLimit-Limit-Tokens'] = String(limits.tokensPerMinute);
      h['X-RateLimit-Remaining-Tokens'] = String(Math.max(0, Math.floor(tok.level)));
      h['X-RateLimit-Reset-Tokens'] = reset(tok, limits.tokensPerMinute);
    }
    const suffix = hit === 'requests' ? 'Requests' : 'Tokens';
    h['X-RateLimit-Limit'] = h[`X-RateLimit-Limit-${suffix}`]!;
    h['X-RateLimit-Remaining'] = h[`X-RateLimit-Remaining-${suffix}`]!;
    h['X-RateLimit-Reset'] = h[`X-RateLimit-Reset-${suffix}`]!;
    return h;
  }
}
