import { sql } from 'kysely';
import type { Database } from '../storage/database.js';

/** What one finished request adds to a key's day. */
export interface UsageDelta {
  requests: number;
  promptTokens: number;
  replyTokens: number;
  errors: number;
  durationMs: number;
}

/** One row of usage: per key, model and UTC day (`YYYY-MM-DD`). */
export interface UsageRow extends UsageDelta {
  keyId: string;
  model: string;
  day: string;
}

export interface UsageQuery {
  keyId?: string | undefined;
  model?: string | undefined;
  /** First day included, `YYYY-MM-DD`. */
  from?: string | undefined;
  /** Last day included, `YYYY-MM-DD`. */
  to?: string | undefined;
}

/** SQL access to `usage_daily` (migration 0004_users): one upsert per finished request. */
export class UsageStore {
  constructor(private readonly database: Database) {}

  /** Adds `d` to the (key, day, model) row, creating it if needed (atomic on both dialects). */
  async add(keyId: string, model: string, day: string, d: UsageDelta): Promise<void> {
    await this.database.db
      .insertInto('usage_daily')
      .values({ key_id: keyId, model, day, requests: d.requests, prompt_tokens: d.promptTokens, reply_tokens: d.replyTokens, errors: d.errors, duration_ms: Math.round(d.durationMs) })
      .onConflict((oc) =>
        oc.columns(['key_id', 'day', 'model']).doUpdateSet({
          requests: sql`usage_daily.requests + ${d.requests}`,
          prompt_tokens: sql`usage_daily.prompt_tokens + ${d.promptTokens}`,
          reply_tokens: sql`usage_daily.reply_tokens + ${d.replyTokens}`,
          errors: sql`usage_daily.errors + ${d.errors}`,
          duration_ms: sql`usage_daily.duration_ms + ${Math.round(d.durationMs)}`,
        }),
      )
      .execute();
  }

  /** Prompt + reply tokens of a key on a day, all models. */
  async tokensOn(keyId: string, day: string): Promise<number> {
    const row = await this.database.db
      .selectFrom('usage_daily')
      .select((eb) => eb.fn.sum<number>(sql`prompt_tokens + reply_tokens`).as('n'))
      .where('key_id', '=', keyId)
      .where('day', '=', day)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Rows matching `q`, by day, key, model. */
  async query(q: UsageQuery): Promise<UsageRow[]> {
    let s = this.database.db.selectFrom('usage_daily').selectAll();
    if (q.keyId !== undefined) s = s.where('key_id', '=', q.keyId);
    if (q.model !== undefined) s = s.where('model', '=', q.model);
    if (q.from !== undefined) s = s.where('day', '>=', q.from);
    if (q.to !== undefined) s = s.where('day', '<=', q.to);
    const rows = await s.orderBy('day').orderBy('key_id').orderBy('model').execute();
    return rows.map((r) => ({
      keyId: r.key_id,
      model: r.model,
      day: r.day,
      requests: Number(r.requests),
      promptTokens: Number(r.prompt_tokens),
      replyTokens: Number(r.reply_tokens),
      errors: Number(r.errors),
      durationMs: Number(r.duration_ms),
    }));
  }
}

/** The UTC day of `t` as `YYYY-MM-DD`. */
export function utcDay(t: Date): string {
  const ms = t.getTime();
  if (ms < dayCache.startMs || ms >= dayCache.endMs) {
    const startMs = Math.floor(ms / DAY_MS) * DAY_MS;
    dayCache = { startMs, endMs: startMs + DAY_MS, day: t.toISOString().slice(0, 10) };
  }
  return dayCache.day;
}
const DAY_MS = 86_400_000;
/** The last day asked for (every request asks, twice): UTC days are whole multiples of DAY_MS since the epoch. */
let dayCache = { startMs: 0, endMs: 0, day: '' };

/** The next UTC midnight after `t`. */
export function nextUtcMidnight(t: Date): Date {
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate() + 1));
}
