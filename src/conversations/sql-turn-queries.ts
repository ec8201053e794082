import { sql, type Kysely, type RawBuilder } from 'kysely';
import { ParleyError } from '../errors/parley-error.js';
import type { DatabaseSchema } from '../storage/schema.js';
import type { BegunTurn, BeginTurnInput, CompleteTurnInput, MessageStatus, MessageTokenCount, RecordedTurn, ReplyMetrics } from './session-store.js';
import { inputColumns } from './sql-session-rows.js';
import { firstTurnTitle } from './conversation-title.js';
import { activateOrCreate, setAutoTitle, setTokens } from './sql-session-queries.js';

/**
 * The statements of a session turn, run inside SqlSessionStore's write transactions (SQLite and
 * Postgres alike): `beginTurnIn` when the reply starts, `completeTurnIn` when it ends, or both in
 * one transaction (`recordTurn`). Raw SQL: the fluent builder cost more CPU than SQLite's own
 * execution (bench/results).
 */

type Db = Kysely<DatabaseSchema>;

/** Rows per multi-row insert: 23 columns × 200 stays far below SQLite's 32766 bound parameters. */
const INSERT_CHUNK_ROWS = 200;

/**
 * Three statements for a known session: the session row update (which also takes the row lock
 * that serialises turns of one session on Postgres, and says whether the session exists), one
 * multi-row insert of the new messages and an `incomplete` assistant placeholder whose `seq`
 * values come from `max(seq)` read inside the same statement, and the conversation's counters.
 */
export async function beginTurnIn(trx: Db, input: BeginTurnInput): Promise<BegunTurn> {
  const { sessionId, model, messages, now } = input;
  const { conversationId } = await activateOrCreate(trx, sessionId, model, now);
  const rows: TurnRow[] = messages.map((m) => ({ ...inputColumns(m), status: 'complete', updatedAt: now, tokens: undefined, metrics: null }));
  rows.push({ role: 'assistant', content: '', thinking: null, images: null, tool_calls: null, tool_name: null, tool_call_id: null, status: 'incomplete', updatedAt: now, tokens: undefined, metrics: null });
  const stored = await insertTurnRows(trx, conversationId, model, now, rows);
  const counted = await countTurn(trx, conversationId, rows.length, model, now, sql`title`);
  const reply = stored.pop();
  if (reply === undefined || stored.length !== messages.length) throw new Error("the turn's messages were inserted without their ids");
  return { sessionId, model, messages, assistantMessageId: reply.id, assistantSeq: reply.seq, messageIds: stored.map((r) => r.id), conversationId, messageCount: counted.messageCount };
}

/**
 * The reply row (with its own token count), the other messages' token counts in one statement,
 * the conversation's `updated_at` and automatic title in one more.
 * @throws ParleyError PARLEY_ERR_INTERNAL when no assistant message has this id (a bug).
 */
export async function completeTurnIn(trx: Db, assistantMessageId: number, input: CompleteTurnInput): Promise<void> {
  const m = input.metrics;
  const own = input.tokens?.find((t) => t.id === assistantMessageId);
  const others = (input.tokens ?? []).filter((t) => t.id !== assistantMessageId);
  const toolCalls = input.toolCalls === undefined ? null : JSON.stringify(input.toolCalls);
  const tokens = own === undefined ? sql`` : sql`, tokens = ${own.tokens}, tokens_exact = ${own.exact ? 1 : 0}`;
  const row = await sql<{ conversation_id: string }>`update messages set status = ${input.status}, content = ${input.content}, thinking = ${input.thinking ?? null}, tool_calls = ${toolCalls}, done_reason = ${m?.doneReason ?? null}, prompt_tokens = ${m?.promptTokens ?? null}, completion_tokens = ${m?.completionTokens ?? null}, total_duration_ns = ${m?.totalDurationNs ?? null}, load_duration_ns = ${m?.loadDurationNs ?? null}, prompt_eval_duration_ns = ${m?.promptEvalDurationNs ?? null}, eval_duration_ns = ${m?.evalDurationNs ?? null}, updated_at = ${input.now}${tokens} where id = ${assistantMessageId} and role = 'assistant' returning conversation_id`.execute(trx);
  const conversationId = row.rows[0]?.conversation_id;
  if (conversationId === undefined) {
    throw new ParleyError('PARLEY_ERR_INTERNAL', `completeTurn: no assistant message with id ${assistantMessageId}`);
  }
  if (others.length > 0) await setTokens(trx, conversationId, others);
  const complete = input.status === 'complete';
  if (complete && input.titleIfUntitled !== undefined) {
    await sql`update conversations set updated_at = ${input.now}, title = coalesce(title, ${input.titleIfUntitled}) where id = ${conversationId}`.execute(trx);
    return;
  }
  const conv = await sql<{ title: string | null }>`update conversations set updated_at = ${input.now} where id = ${conversationId} returning title`.execute(trx);
  if (complete && conv.rows[0] !== undefined && conv.rows[0].title === null) await setAutoTitle(trx, conversationId);
}

/**
 * A whole turn in three statements (one more for a new session, two when the title must be looked
 * up): the session row update, one insert of the new messages and the final reply with their
 * token counts, and one update of the conversation's counters, time and title. `finalOf` runs
 * before the rows exist, with provisional ids (-1, -2, … for the new messages, 0 for the reply)
 * that are replaced by the stored ids in what it returns; it is what `beginTurnIn` then
 * `completeTurnIn` would store, in one statement each fewer.
 */
export async function recordTurnIn(trx: Db, input: BeginTurnInput, finalOf: (turn: BegunTurn) => CompleteTurnInput): Promise<RecordedTurn> {
  const { sessionId, model, messages, now } = input;
  const provisionalIds = messages.map((_, i) => -1 - i);
  const { conversationId, created } = await activateOrCreate(trx, sessionId, model, now);
  const provisional = finalOf({ sessionId, model, messages, assistantMessageId: 0, assistantSeq: 0, messageIds: provisionalIds, conversationId, messageCount: 0 });
  const tokensOf = new Map((provisional.tokens ?? []).map((t) => [t.id, t]));
  const m = provisional.metrics;
  const toolCalls = provisional.toolCalls === undefined ? null : JSON.stringify(provisional.toolCalls);
  const rows: TurnRow[] = messages.map((msg, i) => ({ ...inputColumns(msg), status: 'complete', updatedAt: now, tokens: tokensOf.get(provisionalIds[i]!), metrics: null }));
  rows.push({ role: 'assistant', content: provisional.content, thinking: provisional.thinking ?? null, images: null, tool_calls: toolCalls, tool_name: null, tool_call_id: null, status: provisional.status, updatedAt: provisional.now, tokens: tokensOf.get(0), metrics: m });
  const stored = await insertTurnRows(trx, conversationId, model, now, rows);
  const reply = stored.pop();
  if (reply === undefined || stored.length !== messages.length) throw new Error("the turn's messages were inserted without their ids");
  const complete = provisional.status === 'complete';
  // A conversation this turn created is titled from the turn's own first user message.
  const knownTitle = provisional.titleIfUntitled !== undefined ? provisional.titleIfUntitled : created ? firstTurnTitle(messages) : undefined;
  const title = complete && knownTitle !== undefined ? sql`coalesce(title, ${knownTitle})` : sql`title`;
  const counted = await countTurn(trx, conversationId, rows.length, model, provisional.now, title);
  if (complete && knownTitle === undefined && counted.title === null) await setAutoTitle(trx, conversationId);
  const realId = new Map<number, number>([[0, reply.id], ...provisionalIds.map((p, i): [number, number] => [p, stored[i]!.id])]);
  const final: CompleteTurnInput = { ...provisional, tokens: provisional.tokens?.map((t) => ({ ...t, id: realId.get(t.id) ?? t.id })) };
  const turn: BegunTurn = { sessionId, model, messages, assistantMessageId: reply.id, assistantSeq: reply.seq, messageIds: stored.map((r) => r.id), conversationId, messageCount: counted.messageCount };
  return { turn, final };
}

/** A message row of a turn as inserted: the client's columns, status, time, token count and reply figures. */
type TurnRow = ReturnType<typeof inputColumns> & { status: MessageStatus; updatedAt: string; tokens: MessageTokenCount | undefined; metrics: ReplyMetrics | null };

/**
 * Inserts a turn's rows after the conversation's last `seq` (read inside the same statement), at
 * most INSERT_CHUNK_ROWS per statement; returns their ids and seqs in order.
 */
async function insertTurnRows(trx: Db, conversationId: string, model: string, now: string, rows: TurnRow[]): Promise<Array<{ id: number; seq: number }>> {
  const int = (v: number | null | undefined) => sql`cast(${v ?? null} as integer)`;
  const big = (v: number | null | undefined) => sql`cast(${v ?? null} as bigint)`;
  const stored: Array<{ id: number; seq: number }> = [];
  for (let i = 0; i < rows.length; i += INSERT_CHUNK_ROWS) {
    const selects = rows.slice(i, i + INSERT_CHUNK_ROWS).map(
      (r, k) =>
        sql`select ${conversationId}, ${model}, ${now}, ${r.updatedAt}, ${r.role}, ${r.content}, ${r.thinking}, ${r.images}, ${r.tool_calls}, ${r.tool_name}, ${r.tool_call_id}, top.s + ${k + 1}, ${r.status}, ${int(r.tokens?.tokens)}, ${int(r.tokens?.exact ? 1 : 0)}, ${r.metrics?.doneReason ?? null}, ${int(r.metrics?.promptTokens)}, ${int(r.metrics?.completionTokens)}, ${big(r.metrics?.totalDurationNs)}, ${big(r.metrics?.loadDurationNs)}, ${big(r.metrics?.promptEvalDurationNs)}, ${big(r.metrics?.evalDurationNs)} from top`,
    );
    const inserted = await sql<{ id: number | string; seq: number | string }>`with top as (select coalesce(max(seq), 0) as s from messages where conversation_id = ${conversationId})
insert into messages (conversation_id, model, created_at, updated_at, role, content, thinking, images, tool_calls, tool_name, tool_call_id, seq, status, tokens, tokens_exact, done_reason, prompt_tokens, completion_tokens, total_duration_ns, load_duration_ns, prompt_eval_duration_ns, eval_duration_ns)
${sql.join(selects, sql` union all `)} returning id, seq`.execute(trx);
    // RETURNING order is not promised: order by seq.
    stored.push(...inserted.rows.map((r) => ({ id: Number(r.id), seq: Number(r.seq) })).sort((a, b) => a.seq - b.seq));
  }
  return stored;
}

/** Adds `added` messages to the conversation's count, un-archives it, sets its model, time and `title` (an SQL expression). */
async function countTurn(trx: Db, conversationId: string, added: number, model: string, updatedAt: string, title: RawBuilder<unknown>): Promise<{ messageCount: number; title: string | null }> {
  const r = await sql<{ message_count: number | string; title: string | null }>`update conversations set message_count = message_count + ${added}, model = ${model}, updated_at = ${updatedAt}, archived_at = null, title = ${title} where id = ${conversationId} returning message_count, title`.execute(trx);
  const row = r.rows[0];
  return { messageCount: Number(row?.message_count ?? 0), title: row?.title ?? null };
}
