import { ParleyError } from '../errors/parley-error.js';
import type { ConversationCursor, ConversationRecord, ConversationStore, ConversationTotals } from './conversation-store.js';
import type { SessionService } from './session-service.js';
import type { StoredMessage } from './session-store.js';
import { deletedError } from './session-access.js';

/** Page sizes of the two lists: default and largest accepted `limit`. */
export const CONVERSATION_PAGE = { default: 20, max: 100 } as const;
export const MESSAGE_PAGE = { default: 50, max: 500 } as const;

export interface ConversationServiceOptions {
  /** Largest user content (message text, title), in bytes (`conversations.maxMessageBytes`). */
  maxMessageBytes: number;
  now: () => Date;
}

/** A page of a list, with the cursor of the next page (null on the last page). */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

const ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The conversations API's operations on stored conversations (issue 4, item 4): create, list
 * (newest first, title filter, cursor pages), metadata with token totals, message pages, rename,
 * soft delete and restore. Sending messages goes through the one pipeline
 * (src/chat/conversation-replies.ts). Errors: PARLEY_ERR_CONVERSATION_NOT_FOUND (404),
 * PARLEY_ERR_CONVERSATION_DELETED (410), PARLEY_ERR_CONVERSATION_INVALID_CURSOR and
 * PARLEY_ERR_CONVERSATION_INVALID_LIMIT (400), PARLEY_ERR_CONVERSATION_MESSAGE_TOO_LARGE (413).
 */
export class ConversationService {
  constructor(
    private readonly store: ConversationStore,
    private readonly sessions: SessionService,
    private readonly opts: ConversationServiceOptions,
  ) {}

  /** Creates an empty conversation with a new id (the session id for /api/chat too). */
  async create(input: { model?: string | undefined; title?: string | undefined }): Promise<ConversationRecord> {
    if (input.title !== undefined) this.checkSize('title', input.title);
    const id = this.sessions.mintId();
    await this.sessions.create(id, input.model ?? '');
    if (input.title !== undefined) await this.store.setTitle(id, cleanTitle(input.title), this.opts.now().toISOString());
    return (await this.get(id)).conversation;
  }

  /**
   * The conversation and its token totals.
   * @throws ParleyError 404 for an unknown id, 410 when deleted (unless `allowDeleted`)
   */
  async get(id: string, allowDeleted = false): Promise<{ conversation: ConversationRecord; totals: ConversationTotals }> {
    const found = ID.test(id) ? await this.store.getConversation(id) : undefined;
    if (!found) throw new ParleyError('PARLEY_ERR_CONVERSATION_NOT_FOUND', `conversation '${id}' not found`);
    if (found.conversation.deletedAt !== null && !allowDeleted) throw deletedError(id, found.conversation.deletedAt);
    return found;
  }

  /**
   * Conversations not deleted, newest first; `q` filters on the title (case-insensitive substring);
   * `ownerKeyId` keeps only that API key's.
   */
  async list(params: { limit?: unknown; cursor?: unknown; q?: unknown; ownerKeyId?: string | undefined }): Promise<Page<ConversationRecord>> {
    const limit = parseLimit(params.limit, CONVERSATION_PAGE);
    const q = typeof params.q === 'string' && params.q.trim() !== '' ? params.q : undefined;
    let after: ConversationCursor | undefined;
    if (params.cursor !== undefined) {
      const c = decodeCursor(params.cursor) as { k?: unknown; u?: unknown; i?: unknown; q?: unknown } | undefined;
      if (!c || c.k !== 'c' || typeof c.u !== 'string' || typeof c.i !== 'string' || (c.q ?? null) !== (q ?? null)) throw badCursor();
      after = { updatedAt: c.u, id: c.i };
    }
    const rows = await this.store.listConversations({ limit: limit + 1, after, titleContains: q, ownerKeyId: params.ownerKeyId });
    const items = rows.slice(0, limit);
    const last = items.at(-1);
    const nextCursor = rows.length > limit && last ? encodeCursor({ k: 'c', u: last.updatedAt, i: last.id, q: q ?? null }) : null;
    return { items, nextCursor };
  }

  /** One page of messages by seq: `order=asc` (default, oldest first) or `desc`. */
  async messages(id: string, params: { limit?: unknown; cursor?: unknown; order?: unknown }): Promise<Page<StoredMessage>> {
    const limit = parseLimit(params.limit, MESSAGE_PAGE);
    if (params.order !== undefined && params.order !== 'asc' && params.order !== 'desc') {
      throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', `invalid order '${String(params.order)}': use asc or desc`);
    }
    const order = params.order === 'desc' ? 'desc' : 'asc';
    let fromSeq: number | undefined;
    if (params.cursor !== undefined) {
      const c = decodeCursor(params.cursor) as { k?: unknown; o?: unknown; s?: unknown; c?: unknown } | undefined;
      if (!c || c.k !== 'm' || c.o !== order || c.c !== id || !Number.isSafeInteger(c.s) || (c.s as number) < 0) throw badCursor();
      fromSeq = c.s as number;
    }
    await this.get(id);
    const rows = await this.store.listMessages(id, { limit: limit + 1, order, fromSeq });
    const items = rows.slice(0, limit);
    const last = items.at(-1);
    const nextCursor = rows.length > limit && last ? encodeCursor({ k: 'm', o: order, s: last.seq, c: id }) : null;
    return { items, nextCursor };
  }

  /** Renames; an empty title (after trimming) is refused. */
  async rename(id: string, title: string): Promise<void> {
    this.checkSize('title', title);
    const clean = cleanTitle(title);
    if (clean === '') throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'title must not be empty');
    await this.get(id);
    await this.store.setTitle(id, clean, this.opts.now().toISOString());
  }

  /** Soft delete: hidden from lists, 410 on direct access, kept for `restore`. Idempotent. */
  async delete(id: string): Promise<void> {
    const { conversation } = await this.get(id, true);
    if (conversation.deletedAt === null) await this.store.setDeleted(id, this.opts.now().toISOString(), this.opts.now().toISOString());
  }

  /** Undoes `delete`. Idempotent. */
  async restore(id: string): Promise<void> {
    const { conversation } = await this.get(id, true);
    if (conversation.deletedAt !== null) await this.store.setDeleted(id, null, this.opts.now().toISOString());
  }

  /** Every message in order (export). */
  async allMessages(id: string): Promise<StoredMessage[]> {
    return this.sessions.store.listMessages(id);
  }

  /**
   * @throws ParleyError PARLEY_ERR_CONVERSATION_MESSAGE_TOO_LARGE (413) when `text` is longer
   *   than `conversations.maxMessageBytes` in UTF-8
   */
  checkSize(what: string, text: string): void {
    const bytes = Buffer.byteLength(text);
    if (bytes > this.opts.maxMessageBytes) {
      throw new ParleyError(
        'PARLEY_ERR_CONVERSATION_MESSAGE_TOO_LARGE',
        `${what} too large: ${bytes} bytes; the limit is ${this.opts.maxMessageBytes} bytes (conversations.maxMessageBytes, PARLEY_CONVERSATION_MAX_MESSAGE_BYTES)`,
      );
    }
  }
}

function cleanTitle(title: string): string {
  return title.replace(/\s+/g, ' ').trim();
}

function parseLimit(raw: unknown, page: { default: number; max: number }): number {
  if (raw === undefined) return page.default;
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > page.max) {
    throw new ParleyError('PARLEY_ERR_CONVERSATION_INVALID_LIMIT', `invalid limit '${String(raw)}': use an integer from 1 to ${page.max}`);
  }
  return n;
}

function encodeCursor(value: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decodeCursor(raw: unknown): unknown {
  if (typeof raw !== 'string' || raw === '' || !/^[A-Za-z0-9_-]+$/.test(raw)) return undefined;
  try {
    return JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function badCursor(): ParleyError {
  return new ParleyError('PARLEY_ERR_CONVERSATION_INVALID_CURSOR', 'invalid cursor: pass the next_cursor of the previous page unchanged (with the same order and q)');
}
