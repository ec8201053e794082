import type { Logger } from '../observability/logger.js';
import { firstTurnTitle } from './conversation-title.js';
import type { BegunTurn, CompleteTurnInput, MessageInput, MessageStatus, MessageTokenCount, ReplyMetrics, SessionStore } from './session-store.js';

/** The finished turn, for token accounting (ContextService.turnTokens). */
export interface FinishedTurn {
  /** Ids of the turn's new messages, in order. */
  messageIds: number[];
  assistantMessageId: number;
  complete: boolean;
  metrics: ReplyMetrics | null;
  content: string;
  thinking: string;
}

/** Counts the turn's tokens before `completeTurn` stores them in the same transaction; undefined = none. */
export type TurnAccountant = (turn: FinishedTurn) => MessageTokenCount[] | undefined;

/** Told after each successful write of the turn (SessionService keeps its history cache with it). */
export interface TurnObserver {
  begun?(turn: BegunTurn, beginNow: string): void;
  completed?(turn: BegunTurn, beginNow: string, final: CompleteTurnInput): void;
}

/** The reply as it accumulates from upstream chunks (Ollama chat chunk `message` fields). */
export interface ReplySoFar {
  content: string;
  thinking: string;
  toolCalls: unknown[];
}

/**
 * Persists one session turn while it streams: `begin()` starts the insert of the new messages
 * plus an `incomplete` assistant placeholder, which the relay awaits (`stored()`) before the first
 * chunk goes to the client; partial text is saved every `partialSaveIntervalMs` (aligned to a tenth
 * of it, see `partialSaveDelayMs`);
 * `finish()` is awaited before the final chunk goes to the client, so a turn whose final chunk
 * was sent is durable (SQLite WAL commit / Postgres commit).
 *
 * A turn nothing of which reaches the client before it ends (`stream:false`) need not be begun
 * early: the relay does not call `stored()`, the first partial save begins it, and a turn that
 * ends before that is written by `finish()` in one transaction (`SessionStore.recordTurn`), one
 * commit instead of two. A deferred begin that fails is `beginFailure`, for the relay to stop on.
 */
export class TurnRecorder {
  readonly reply: ReplySoFar = { content: '', thinking: '', toolCalls: [] };
  /** How the turn ended (set by `finish`): status and the final chunk's metrics. */
  outcome: { status: MessageStatus; metrics: ReplyMetrics | null } | undefined;
  private begun: Promise<BegunTurn> | undefined;
  private beginNow = '';
  private accountant: TurnAccountant | undefined;
  private lastSavedLength = 0;
  private saveTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private finished = false;
  /** Why the turn's rows could not be written by `begin()`, once that failed. */
  beginFailure: unknown;

  constructor(
    private readonly store: SessionStore,
    private readonly sessionId: string,
    private readonly model: string,
    private readonly newMessages: MessageInput[],
    private readonly partialSaveIntervalMs: number,
    private readonly now: () => Date,
    private readonly logger: Logger,
    private readonly observer?: TurnObserver | undefined,
    /** The conversation's automatic title when known (see CompleteTurnInput.titleIfUntitled). */
    private readonly titleIfUntitled?: string | null | undefined,
  ) {}

  /** Token counts computed at `finish()` and written with the completed turn (context management). */
  accountWith(fn: TurnAccountant): void {
    this.accountant = fn;
  }

  /** Starts writing the turn (idempotent). Errors surface from `finish()`. */
  begin(): void {
    if (this.begun) return;
    const now = (this.beginNow = this.now().toISOString());
    this.begun = this.store.beginTurn({ sessionId: this.sessionId, model: this.model, messages: this.newMessages, now }).then((r) => {
      this.observer?.begun?.(r, now);
      return r;
    });
    // Keep a rejection from being reported as unhandled before finish() awaits it.
    this.begun.catch((e: unknown) => {
      this.beginFailure = e;
      this.logger.error({ err: e, sessionId: this.sessionId }, 'session.turn_begin_failed');
    });
  }

  /**
   * Starts writing the turn if needed and resolves once its rows are stored.
   * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE when they cannot be written
   */
  async stored(): Promise<void> {
    this.begin();
    await this.begun;
  }

  /** Adds one upstream chat chunk's `message` to the reply. */
  add(message: { content?: unknown; thinking?: unknown; tool_calls?: unknown } | undefined): void {
    if (!message) return;
    if (typeof message.content === 'string') this.reply.content += message.content;
    if (typeof message.thinking === 'string') this.reply.thinking += message.thinking;
    if (Array.isArray(message.tool_calls)) this.reply.toolCalls.push(...(message.tool_calls as unknown[]));
    if (this.partialSaveIntervalMs > 0 && !this.saveTimer && !this.finished) {
      this.saveTimer = setTimeout(() => this.savePartial(), partialSaveDelayMs(this.partialSaveIntervalMs, Date.now()));
      this.saveTimer.unref();
    }
  }

  /**
   * Writes the final state of the reply. `complete` only when the upstream sent `done:true`;
   * anything else (abort, upstream failure, stream cut) is stored `incomplete` with what arrived.
   * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE when the database cannot be written
   */
  async finish(status: MessageStatus, metrics: ReplyMetrics | null): Promise<void> {
    this.finished = true;
    this.outcome = { status, metrics };
    if (this.saveTimer) clearTimeout(this.saveTimer);
    if (!this.begun) {
      const now = (this.beginNow = this.now().toISOString());
      const { turn, final } = await this.store.recordTurn({ sessionId: this.sessionId, model: this.model, messages: this.newMessages, now }, (t) => this.finalState(t, status, metrics));
      this.observer?.begun?.(turn, now);
      this.observer?.completed?.(turn, now, final);
      return;
    }
    const turn = await this.begun;
    await this.saving;
    const final = this.finalState(turn, status, metrics);
    await this.store.completeTurn(turn.assistantMessageId, final);
    this.observer?.completed?.(turn, this.beginNow, final);
  }

  /** The reply's final state, with the turn's token counts when an accountant was given. */
  private finalState(turn: BegunTurn, status: MessageStatus, metrics: ReplyMetrics | null): CompleteTurnInput {
    let tokens: MessageTokenCount[] | undefined;
    if (this.accountant) {
      try {
        tokens = this.accountant({
          messageIds: turn.messageIds,
          assistantMessageId: turn.assistantMessageId,
          complete: status === 'complete',
          metrics,
          content: this.reply.content,
          thinking: this.reply.thinking,
        });
      } catch (e) {
        // Counts are an extra: the turn is stored without them rather than not at all.
        this.logger.warn({ err: e, sessionId: this.sessionId }, 'context.accounting_failed');
      }
    }
    return {
      status,
      content: this.reply.content,
      thinking: this.reply.thinking || undefined,
      toolCalls: this.reply.toolCalls.length > 0 ? this.reply.toolCalls : undefined,
      metrics,
      now: this.now().toISOString(),
      tokens,
      // A turn that began its conversation (nothing stored before its messages) titles it itself.
      titleIfUntitled: this.titleIfUntitled !== undefined ? this.titleIfUntitled : turn.messageCount === turn.messageIds.length + 1 ? firstTurnTitle(this.newMessages) : undefined,
    };
  }

  private savePartial(): void {
    this.saveTimer = undefined;
    if (this.finished) return;
    // A deferred turn (stream:false) is begun by its first partial save.
    this.begin();
    const length = this.reply.content.length + this.reply.thinking.length;
    if (length === this.lastSavedLength) return;
    this.lastSavedLength = length;
    const { content, thinking } = this.reply;
    this.saving = this.saving
      .then(() => this.begun!)
      .then((t) => this.store.savePartial(t.assistantMessageId, content, thinking || undefined, this.now().toISOString()))
      .catch((e: unknown) => this.logger.warn({ err: e, sessionId: this.sessionId }, 'session.partial_save_failed'));
  }
}

/**
 * How long until a reply's next partial save: `intervalMs`, rounded up so that the save falls on
 * a multiple of `intervalMs / 10` of the clock (`nowMs`, epoch ms). Streams that are due within
 * the same tenth of the interval are saved in the same turn of the event loop, so their updates
 * share one SQLite group commit instead of one commit each (bench/cell.mjs gap-100: about 1.7
 * partial saves per stream, each its own commit before). The wait is thus at least `intervalMs`
 * and less than `intervalMs` plus a tenth of it (rounded, at least 1 ms), so a `stream:false`
 * reply shorter than the interval is still stored in one transaction.
 */
export function partialSaveDelayMs(intervalMs: number, nowMs: number): number {
  const slotMs = Math.max(1, Math.round(intervalMs / 10));
  const dueMs = nowMs + intervalMs;
  return intervalMs + ((slotMs - (dueMs % slotMs)) % slotMs);
}

/** Reads Ollama's final-chunk metrics (integer nanoseconds, reference §2). */
export function metricsFromChunk(chunk: Record<string, unknown>): ReplyMetrics {
  const num = (k: string): number | null => (typeof chunk[k] === 'number' ? (chunk[k] as number) : null);
  return {
    doneReason: typeof chunk.done_reason === 'string' ? chunk.done_reason : null,
    promptTokens: num('prompt_eval_count'),
    completionTokens: num('eval_count'),
    totalDurationNs: num('total_duration'),
    loadDurationNs: num('load_duration'),
    promptEvalDurationNs: num('prompt_eval_duration'),
    evalDurationNs: num('eval_duration'),
  };
}
