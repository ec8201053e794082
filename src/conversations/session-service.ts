import { randomUUID } from 'node:crypto';
import { ParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import type { MessageInput, SessionRecord, SessionStore, StoredMessage } from './session-store.js';
import { TurnRecorder } from './turn-recorder.js';

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The value of `session_id` (or `X-Session-Id`) that asks Parley to mint a new id. */
export const MINT_SESSION_ID = 'new';

export interface SessionServiceOptions {
  /** Idle time after which a session is archived, in ms. */
  idleExpiryMs: number;
  sweepIntervalMs: number;
  partialSaveIntervalMs: number;
  now: () => Date;
}

/**
 * Server-side conversation history keyed by `session_id` (issue: sessions). The client sends only
 * its new messages; `history()` gives what to prepend; a `TurnRecorder` stores the turn.
 */
export class SessionService {
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly store: SessionStore,
    private readonly opts: SessionServiceOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * Validates a client-given id, or mints one for `"new"`.
   * @throws ParleyError PARLEY_ERR_SESSION_INVALID_ID (400) for anything but 1-128 chars of [A-Za-z0-9._:-]
   */
  resolveId(raw: unknown): string {
    if (raw === MINT_SESSION_ID) return this.mintId();
    if (typeof raw !== 'string' || !SESSION_ID.test(raw)) {
      throw new ParleyError('PARLEY_ERR_SESSION_INVALID_ID', 'invalid session_id: use 1-128 characters from A-Z a-z 0-9 . _ : -, or "new" to start a session');
    }
    return raw;
  }

  mintId(): string {
    return randomUUID();
  }

  /**
   * The stored conversation to send ahead of the new messages, in order. Assistant replies that
   * never completed are left out (they are kept and marked in storage, but not passed off to the
   * model as something it said).
   */
  async history(sessionId: string): Promise<MessageInput[]> {
    return (await this.sendable(sessionId)).map(toWireMessage);
  }

  /** The stored messages `history()` is made of (ids, seq, token counts), in order. */
  async sendable(sessionId: string): Promise<StoredMessage[]> {
    const stored = await this.store.listMessages(sessionId);
    return stored.filter((m) => !(m.role === 'assistant' && m.status !== 'complete'));
  }

  recorder(sessionId: string, model: string, newMessages: MessageInput[]): TurnRecorder {
    return new TurnRecorder(this.store, sessionId, model, newMessages, this.opts.partialSaveIntervalMs, this.opts.now, this.logger);
  }

  /** Creates an empty session now (for `POST /api/sessions`). */
  async create(id: string, model: string): Promise<SessionRecord> {
    return this.store.ensureSession(id, model, this.opts.now().toISOString());
  }

  /** The session with every stored message, or undefined. */
  async get(id: string): Promise<{ session: SessionRecord; messages: StoredMessage[] } | undefined> {
    const session = await this.store.getSession(id);
    if (!session) return undefined;
    return { session, messages: await this.store.listMessages(id) };
  }

  /** Archives sessions idle longer than idleExpiryMs; returns how many. */
  async sweep(): Promise<number> {
    const now = this.opts.now();
    const n = await this.store.archiveIdle(new Date(now.getTime() - this.opts.idleExpiryMs).toISOString(), now.toISOString());
    if (n > 0) this.logger.info({ archived: n }, 'session.archived_idle');
    return n;
  }

  startSweeper(): void {
    if (this.sweeper || this.opts.sweepIntervalMs === 0) return;
    this.sweeper = setInterval(() => {
      this.sweep().catch((e: unknown) => this.logger.error({ err: e }, 'session.sweep_failed'));
    }, this.opts.sweepIntervalMs);
    this.sweeper.unref();
  }

  stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

/** A stored message as an Ollama message object (only the fields a model reads). */
export function toWireMessage(m: StoredMessage): MessageInput {
  const out: MessageInput = { role: m.role, content: m.content };
  if (m.thinking) out.thinking = m.thinking;
  if (m.images && m.images.length > 0) out.images = m.images;
  if (m.tool_calls && m.tool_calls.length > 0) out.tool_calls = m.tool_calls;
  if (m.tool_name) out.tool_name = m.tool_name;
  if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
  return out;
}
