import { randomUUID } from 'node:crypto';
import { ParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { Caller } from '../usage/key-service.js';
import type { ModelCall, ModelCallService } from './model-call-service.js';
import { ReplyRun } from './reply-run.js';

export interface ConversationRepliesOptions {
  /** `conversations.reconnectGraceMs`. */
  graceMs: number;
  /** `conversations.replyRetentionMs`: finished replies stay replayable this long. */
  retentionMs: number;
  /** `conversations.replyBufferMaxEvents`. */
  maxEvents: number;
}

/** A user message sent through the conversations API (REST or WebSocket). */
export interface SendInput {
  conversationId: string;
  requestId: string;
  model: string;
  content: string;
  images?: string[] | undefined;
  /** Ollama `options`, `think`, `format`, `keep_alive`, passed through. */
  extra?: Record<string, unknown> | undefined;
  /** The API key the reply runs as (budget, rate limits, fair queue, usage); undefined = anonymous. */
  caller?: Caller | undefined;
}

/** Reply ids: `rpl_` + 32 hex digits (no `:`, so `<replyId>:<seq>` splits unambiguously). */
const REPLY_ID = /^rpl_[0-9a-f]{32}$/;

/**
 * The replies of the conversations API: each is one run of the ONE pipeline
 * (`ModelCallService.run`) as a session turn (`sessionId` = the conversation id), writing into a
 * `ReplyRun` instead of an HTTP response. At most one reply runs per conversation. Finished replies
 * stay findable (for Last-Event-ID resume) for `retentionMs`.
 */
export class ConversationReplies {
  private readonly byId = new Map<string, ReplyRun>();
  private readonly running = new Map<string, ReplyRun>();
  private readonly settled = new Set<Promise<void>>();

  constructor(
    private readonly calls: ModelCallService,
    private readonly pool: UpstreamPool,
    private readonly opts: ConversationRepliesOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * Starts a reply: validates the model, then runs the pipeline in the background.
   * @throws ParleyError PARLEY_ERR_CONVERSATION_BUSY (409) when a reply is already running here,
   *   PARLEY_ERR_MODEL_NOT_FOUND (404) when no upstream serves the model
   */
  async send(input: SendInput): Promise<ReplyRun> {
    this.assertIdle(input.conversationId);
    if (!(await this.pool.knowsModel(input.model))) throw new ParleyError('PARLEY_ERR_MODEL_NOT_FOUND', `model '${input.model}' not found`);
    this.assertIdle(input.conversationId);
    const replyId = `rpl_${randomUUID().replace(/-/g, '')}`;
    const log = this.logger.child({ reqId: input.requestId, conversationId: input.conversationId, replyId });
    const run = new ReplyRun({
      replyId,
      conversationId: input.conversationId,
      graceMs: this.opts.graceMs,
      maxEvents: this.opts.maxEvents,
      onAbandoned: () => log.info({ graceMs: this.opts.graceMs }, 'conversation.reply_abandoned'),
      onFinished: (r) => {
        if (this.running.get(input.conversationId) === r) this.running.delete(input.conversationId);
        setTimeout(() => this.byId.delete(replyId), this.opts.retentionMs).unref();
      },
    });
    this.byId.set(replyId, run);
    this.running.set(input.conversationId, run);
    const message: Record<string, unknown> = { role: 'user', content: input.content };
    if (input.images && input.images.length > 0) message.images = input.images;
    const call: ModelCall = {
      endpoint: 'chat',
      requestId: input.requestId,
      model: input.model,
      body: { ...input.extra, model: input.model, messages: [message], stream: true },
      clientStream: true,
      sessionId: input.conversationId,
      queueUpdates: true,
      forwardHeaders: {},
      caller: input.caller,
    };
    run.note('step', { stage: 'accepted', reply_id: replyId, conversation_id: input.conversationId, model: input.model });
    log.info('conversation.reply_started');
    const done = this.calls
      .run(call, run, run.signal)
      .catch((e: unknown) => run.fail(e))
      .finally(() => {
        run.settle();
        this.settled.delete(done);
      });
    this.settled.add(done);
    return run;
  }

  /** The running reply of a conversation, if any. */
  current(conversationId: string): ReplyRun | undefined {
    return this.running.get(conversationId);
  }

  /**
   * The reply a Last-Event-ID (`<replyId>:<seq>`) points at, with the seq.
   * @throws ParleyError PARLEY_ERR_CONVERSATION_INVALID_EVENT_ID (400) when the id is malformed
   *   or the reply is not (or no longer) one of this conversation's
   */
  resolveEventId(conversationId: string, lastEventId: string): { run: ReplyRun; seq: number } {
    const at = lastEventId.lastIndexOf(':');
    const replyId = lastEventId.slice(0, Math.max(at, 0));
    const seqText = lastEventId.slice(at + 1);
    const run = this.byId.get(replyId);
    if (at < 0 || !REPLY_ID.test(replyId) || !/^\d{1,15}$/.test(seqText) || !run || run.opts.conversationId !== conversationId) {
      throw new ParleyError(
        'PARLEY_ERR_CONVERSATION_INVALID_EVENT_ID',
        `Last-Event-ID '${lastEventId.slice(0, 200)}' does not belong to a reply of conversation '${conversationId}' (or the reply finished more than ${this.opts.retentionMs} ms ago)`,
      );
    }
    return { run, seq: Number(seqText) };
  }

  /** Cancels the running reply of a conversation; false when none runs. */
  cancel(conversationId: string, reason?: string): boolean {
    const run = this.running.get(conversationId);
    if (!run) return false;
    run.cancel(reason);
    return true;
  }

  /** Cancels every running reply (shutdown past its drain timeout) and waits for them to be stored. */
  async cancelAll(): Promise<void> {
    for (const run of this.running.values()) run.cancel('Parley is shutting down');
    await Promise.allSettled([...this.settled]);
  }

  private assertIdle(conversationId: string): void {
    const run = this.running.get(conversationId);
    if (run) throw new ParleyError('PARLEY_ERR_CONVERSATION_BUSY', `a reply (${run.replyId}) is already running in conversation '${conversationId}'; wait for its done event or cancel it`);
  }
}
