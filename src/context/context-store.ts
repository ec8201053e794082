import type { Kysely } from 'kysely';
import { writeTransaction, type Database } from '../storage/database.js';
import type { DatabaseSchema } from '../storage/schema.js';
import { storageOperation } from '../storage/storage-error.js';

type Db = Kysely<DatabaseSchema>;

/** Context state of one session (table `session_context`). Timestamps ISO-8601 UTC. */
export interface SessionContextState {
  sessionId: string;
  windowTokens: number | null;
  /** Turns that left history out. */
  truncations: number;
  /** Messages and user turns left out of the latest turn. */
  truncatedMessages: number;
  truncatedTurns: number;
  /** Highest message seq ever left out, or null. */
  droppedThroughSeq: number | null;
  summary: SessionSummary | null;
  /** Summaries written so far. */
  summaries: number;
  updatedAt: string;
}

/** The running summary of a session's older history. */
export interface SessionSummary {
  text: string;
  /** Covers every message with seq ≤ throughSeq. */
  throughSeq: number;
  /** Messages folded in so far. */
  messages: number;
  /** Prompt tokens of the summary as a system message; exact when derived from the upstream's eval_count. */
  tokens: number;
  tokensExact: boolean;
  model: string;
  createdAt: string;
}

/** A message's token count to store. */
export interface MessageTokens {
  id: number;
  tokens: number;
  exact: boolean;
}

/**
 * SQL for context management: per-message token counts (`messages.tokens`, `tokens_exact`) and
 * per-session state (`session_context`). Every database failure is thrown as ParleyError
 * PARLEY_ERR_STORAGE_UNAVAILABLE.
 */
export class ContextStore {
  private readonly db: Db;
  private readonly database: Database;

  constructor(database: Database) {
    this.db = database.db;
    this.database = database;
  }

  /** The session's context state, or undefined when nothing was recorded yet. */
  get(sessionId: string): Promise<SessionContextState | undefined> {
    return this.run('getContext', async () => {
      const r = await this.db.selectFrom('session_context').selectAll().where('session_id', '=', sessionId).executeTakeFirst();
      if (!r) return undefined;
      const summary: SessionSummary | null =
        r.summary === null
          ? null
          : {
              text: r.summary,
              throughSeq: Number(r.summary_through_seq ?? 0),
              messages: Number(r.summary_messages),
              tokens: Number(r.summary_tokens ?? 0),
              tokensExact: Number(r.summary_tokens_exact) === 1,
              model: r.summary_model ?? '',
              createdAt: r.summary_created_at ?? r.updated_at,
            };
      return {
        sessionId,
        windowTokens: r.window_tokens === null ? null : Number(r.window_tokens),
        truncations: Number(r.truncations),
        truncatedMessages: Number(r.truncated_messages),
        truncatedTurns: Number(r.truncated_turns),
        droppedThroughSeq: r.dropped_through_seq === null ? null : Number(r.dropped_through_seq),
        summary,
        summaries: Number(r.summaries),
        updatedAt: r.updated_at,
      };
    });
  }

  /**
   * Records what the latest turn left out (0 messages for a turn that kept everything: the
   * latest-turn figures reset, the totals stay).
   */
  recordTurn(sessionId: string, t: { windowTokens: number; droppedMessages: number; droppedTurns: number; droppedThroughSeq: number | null; now: string }): Promise<void> {
    return this.run('recordContextTurn', async () => {
      const truncated = t.droppedMessages > 0 ? 1 : 0;
      await this.db
        .insertInto('session_context')
        .values({
          session_id: sessionId,
          window_tokens: t.windowTokens,
          truncations: truncated,
          truncated_messages: t.droppedMessages,
          truncated_turns: t.droppedTurns,
          dropped_through_seq: t.droppedThroughSeq,
          updated_at: t.now,
        })
        .onConflict((oc) =>
          oc.column('session_id').doUpdateSet((eb) => ({
            window_tokens: t.windowTokens,
            truncations: eb('session_context.truncations', '+', truncated),
            truncated_messages: t.droppedMessages,
            truncated_turns: t.droppedTurns,
            dropped_through_seq: eb.ref('session_context.dropped_through_seq'),
            updated_at: t.now,
          })),
        )
        .execute();
      if (t.droppedThroughSeq !== null) {
        // Portable "greatest": only move the mark forward.
        await this.db
          .updateTable('session_context')
          .set({ dropped_through_seq: t.droppedThroughSeq })
          .where('session_id', '=', sessionId)
          .where((eb) => eb.or([eb('dropped_through_seq', 'is', null), eb('dropped_through_seq', '<', t.droppedThroughSeq!)]))
          .execute();
      }
    });
  }

  /** Replaces the running summary (one more summary made). */
  saveSummary(sessionId: string, s: SessionSummary): Promise<void> {
    return this.run('saveSummary', async () => {
      const cols = {
        summary: s.text,
        summary_through_seq: s.throughSeq,
        summary_messages: s.messages,
        summary_tokens: s.tokens,
        summary_tokens_exact: s.tokensExact ? 1 : 0,
        summary_model: s.model,
        summary_created_at: s.createdAt,
        updated_at: s.createdAt,
      };
      await this.db
        .insertInto('session_context')
        .values({ session_id: sessionId, ...cols, summaries: 1 })
        .onConflict((oc) => oc.column('session_id').doUpdateSet((eb) => ({ ...cols, summaries: eb('session_context.summaries', '+', 1) })))
        .execute();
    });
  }

  /** Stores token counts on messages (by id). */
  setMessageTokens(updates: MessageTokens[]): Promise<void> {
    if (updates.length === 0) return Promise.resolve();
    return this.run('setMessageTokens', () =>
      writeTransaction(this.database, async (trx) => {
        for (const u of updates) await trx.updateTable('messages').set({ tokens: u.tokens, tokens_exact: u.exact ? 1 : 0 }).where('id', '=', u.id).execute();
      }),
    );
  }

  /** Ids of the `count` messages stored right before message `messageId` in its conversation, oldest first. */
  precedingIds(messageId: number, count: number): Promise<number[]> {
    if (count === 0) return Promise.resolve([]);
    return this.run('precedingMessageIds', async () => {
      const me = await this.db.selectFrom('messages').select(['conversation_id', 'seq']).where('id', '=', messageId).executeTakeFirst();
      if (!me) return [];
      const rows = await this.db
        .selectFrom('messages')
        .select(['id', 'seq'])
        .where('conversation_id', '=', me.conversation_id)
        .where('seq', '<', me.seq)
        .orderBy('seq', 'desc')
        .limit(count)
        .execute();
      return rows.map((r) => Number(r.id)).reverse();
    });
  }

  /** Deletes the context rows of these sessions (thread retention). */
  deleteSessions(sessionIds: string[]): Promise<void> {
    if (sessionIds.length === 0) return Promise.resolve();
    return this.run('deleteContext', async () => {
      await this.db.deleteFrom('session_context').where('session_id', 'in', sessionIds).execute();
    });
  }

  private run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return storageOperation(operation, fn);
  }
}
