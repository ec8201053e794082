import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from '../observability/logger.js';
import { writeTransaction, type Database } from '../storage/database.js';
import type { DatabaseSchema } from '../storage/schema.js';
import { storageOperation } from '../storage/storage-error.js';
import type { SessionService } from './session-service.js';
import type { MessageInput } from './session-store.js';

type Db = Kysely<DatabaseSchema>;

/** Prefix of the session ids Parley gives threaded conversations (`thread-<uuid>`). */
export const THREAD_PREFIX = 'thread-';

export interface ThreadServiceOptions {
  /** A thread idle this long is not continued any more and is deleted, in ms. */
  retentionMs: number;
  /** How often expired threads are deleted, in ms; 0 = never automatically. */
  sweepIntervalMs: number;
  now: () => Date;
}

/** The identity threads are keyed by: SHA-256 (hex) of `<client IP>\n<User-Agent>` (or of an API key id). */
export function threadCallerKey(parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex');
}

/**
 * Threads for stock clients (threads.mode = thread): `/api/chat` without a session id re-sends the
 * whole conversation each turn (the ollama CLI, ollama-js). `resolve` finds the caller's recent
 * conversation whose stored history (as Parley would send it back: complete replies only) is a
 * strict prefix of the messages sent, and answers its session id plus only the messages after
 * that prefix; otherwise it starts a new thread (`thread-<uuid>`) with all of them. Candidates are
 * found by caller and a hash of the messages up to the first user message, then compared message
 * by message (role, content, images, tool call names and arguments). A thread idle longer than
 * `retentionMs` is neither continued nor kept: `sweep()` deletes it with its messages.
 *
 * Two requests racing on the same thread both append to it (there is no lock across turns).
 */
export class ThreadService {
  private readonly db: Db;
  private readonly database: Database;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    database: Database,
    private readonly sessions: SessionService,
    private readonly opts: ThreadServiceOptions,
    private readonly logger: Logger,
    /** Called with the session ids a sweep deleted (context rows are removed there). */
    private readonly onDeleted?: (sessionIds: string[]) => Promise<void>,
  ) {
    this.db = database.db;
    this.database = database;
  }

  /**
   * The session for a no-session chat and the messages that are new in it.
   * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE
   */
  async resolve(callerKey: string, messages: MessageInput[]): Promise<{ sessionId: string; newMessages: MessageInput[] }> {
    const now = this.opts.now();
    const firstUser = messages.findIndex((m) => m.role === 'user');
    const rootLength = firstUser === -1 ? messages.length : firstUser + 1;
    const keys = messages.map(canonical);
    const rootHash = createHash('sha256').update(keys.slice(0, rootLength).join('\n')).digest('hex');
    const since = new Date(now.getTime() - this.opts.retentionMs).toISOString();
    const candidates = await this.run('findThreads', () =>
      this.db
        .selectFrom('threads')
        .select('session_id')
        .where('caller_key', '=', callerKey)
        .where('root_hash', '=', rootHash)
        .where('last_active_at', '>=', since)
        .orderBy('last_active_at', 'desc')
        .limit(10)
        .execute(),
    );
    let best: { sessionId: string; length: number } | undefined;
    for (const c of candidates) {
      const stored = await this.sessions.sendable(c.session_id);
      const n = stored.length;
      if (n < rootLength || n >= messages.length || (best && n <= best.length)) continue;
      if (stored.every((m, i) => canonical(m) === keys[i])) best = { sessionId: c.session_id, length: n };
    }
    if (best) {
      await this.run('touchThread', () => this.db.updateTable('threads').set({ last_active_at: now.toISOString() }).where('session_id', '=', best.sessionId).execute());
      return { sessionId: best.sessionId, newMessages: messages.slice(best.length) };
    }
    const sessionId = THREAD_PREFIX + randomUUID();
    await this.run('createThread', () =>
      this.db.insertInto('threads').values({ session_id: sessionId, caller_key: callerKey, root_hash: rootHash, created_at: now.toISOString(), last_active_at: now.toISOString() }).execute(),
    );
    this.logger.debug({ sessionId }, 'thread.started');
    return { sessionId, newMessages: messages };
  }

  /** Deletes threads idle longer than retentionMs (conversation, session, messages); returns how many. */
  async sweep(): Promise<number> {
    const before = new Date(this.opts.now().getTime() - this.opts.retentionMs).toISOString();
    const ids = await this.run('sweepThreads', () =>
      writeTransaction(this.database, async (trx) => {
        const rows = await trx.selectFrom('threads').select('session_id').where('last_active_at', '<', before).limit(500).execute();
        const sessionIds = rows.map((r) => r.session_id);
        if (sessionIds.length === 0) return sessionIds;
        const conv = await trx.selectFrom('sessions').select('conversation_id').where('id', 'in', sessionIds).execute();
        const convIds = conv.map((c) => c.conversation_id);
        if (convIds.length > 0) {
          await trx.deleteFrom('messages').where('conversation_id', 'in', convIds).execute();
          await trx.deleteFrom('sessions').where('id', 'in', sessionIds).execute();
          await trx.deleteFrom('conversations').where('id', 'in', convIds).execute();
        }
        await trx.deleteFrom('threads').where('session_id', 'in', sessionIds).execute();
        return sessionIds;
      }),
    );
    if (ids.length > 0) {
      await this.onDeleted?.(ids);
      this.logger.info({ threads: ids.length }, 'thread.expired_deleted');
    }
    return ids.length;
  }

  startSweeper(): void {
    if (this.sweeper || this.opts.sweepIntervalMs === 0) return;
    this.sweeper = setInterval(() => {
      this.sweep().catch((e: unknown) => this.logger.error({ err: e }, 'thread.sweep_failed'));
    }, this.opts.sweepIntervalMs);
    this.sweeper.unref();
  }

  stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return storageOperation(operation, fn);
  }
}

/** What makes two messages the same turn for threading. */
function canonical(m: MessageInput): string {
  const calls = (m.tool_calls ?? []).map((c) => {
    const f = (c as { function?: { name?: unknown; arguments?: unknown } } | null)?.function;
    return [f?.name ?? null, f?.arguments ?? null];
  });
  return JSON.stringify([String(m.role).toLowerCase(), m.content ?? '', m.images ?? [], calls, m.tool_name ?? '']);
}
