import { ParleyError, isParleyError } from '../errors/parley-error.js';
import { toParleyError } from '../errors/parley-error.js';
import { DEGRADED_HEADER } from '../resilience/degraded-mode.js';
import type { ClientStream, ClientStreamLimits, PipelineStep } from './client-stream.js';
import { NdjsonLines } from './ndjson-lines.js';
import { replyEventsFromChunk, type ReplyEventDraft, type ReplyEventType } from './reply-events.js';

export type { ReplyEventType } from './reply-events.js';

/** One numbered event of a reply. `id` is `<replyId>:<seq>`; `seq` counts from 1 without gaps. */
export interface ReplyEvent {
  id: string;
  seq: number;
  type: ReplyEventType;
  data: Record<string, unknown>;
}

/** Someone reading a reply's events (an SSE response, a WebSocket). */
export interface ReplySubscriber {
  event(e: ReplyEvent): void;
  /** The reply finished (after its last event was delivered). */
  end(): void;
}

export interface ReplyRunOptions {
  replyId: string;
  /** The conversation (session) id. */
  conversationId: string;
  /** A reply nobody listens to is cancelled after this long, in ms. */
  graceMs: number;
  /** Events kept for replay; the oldest are dropped past it. */
  maxEvents: number;
  /** Called once when the last event was emitted. */
  onFinished?: ((run: ReplyRun) => void) | undefined;
  /** Called when the grace period ran out (logs). */
  onAbandoned?: ((run: ReplyRun) => void) | undefined;
}

/**
 * One conversation reply in flight: the sink the pipeline writes Ollama's bytes to (it implements
 * `ClientStream`) and the source of the typed events the conversations API sends.
 *
 * It parses the NDJSON the pipeline writes into `token`, `step`, `warning`, `error` and `done`
 * events (see reply-events.ts), numbers them, keeps them (at most `maxEvents`) for replay, and
 * fans them out to the current subscribers. It owns the reply's AbortController: a subscriber
 * leaving does not stop the reply; when the last one leaves, a grace timer starts (a new
 * subscriber stops it) after which the reply is cancelled, which the pipeline stores incomplete.
 */
export class ReplyRun implements ClientStream {
  readonly controller = new AbortController();
  readonly startedAtMs = performance.now();
  /** The reply's text so far (content tokens joined). */
  content = '';
  private readonly events: ReplyEvent[] = [];
  private nextSeq = 1;
  private readonly subscribers = new Set<ReplySubscriber>();
  private readonly lines = new NdjsonLines();
  private begun = false;
  private finishedFlag = false;
  private degradedWarned = false;
  private firstTokenAtMs: number | undefined;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(readonly opts: ReplyRunOptions) {}

  get replyId(): string {
    return this.opts.replyId;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once the last event (done or error) was emitted. */
  get finished(): boolean {
    return this.finishedFlag;
  }

  /** Seq of the last event emitted (0 before the first). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  // ClientStream: what the pipeline calls.

  get started(): boolean {
    return this.begun;
  }

  get gone(): boolean {
    return this.controller.signal.aborted || this.finishedFlag;
  }

  get cutOff(): boolean {
    return false;
  }

  start(_status: number, headers: Record<string, string>): void {
    if (this.begun) return;
    this.begun = true;
    const degraded = headers[DEGRADED_HEADER];
    if (degraded) this.warnDegraded(degraded);
  }

  /** Memory per reply is bounded by `maxEvents`, not by a byte buffer. */
  limit(_limits: ClientStreamLimits): void {}

  async write(chunk: string | Buffer): Promise<void> {
    if (this.gone) return;
    this.begun = true;
    for (const line of this.lines.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) this.line(line);
  }

  end(chunk?: string | Buffer): void {
    if (chunk !== undefined) void this.write(chunk);
    const tail = this.lines.flush();
    if (tail !== undefined && !this.gone) this.line(tail);
    if (!this.finishedFlag && !this.controller.signal.aborted) {
      this.fail(new ParleyError('PARLEY_ERR_UPSTREAM_INCOMPLETE', 'the model stopped before finishing its reply'));
    }
  }

  sendWhole(status: number, headers: Record<string, string>, body: string | Buffer): void {
    if (this.gone) return;
    this.start(status, headers);
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (status === 200) {
      this.end(text.endsWith('\n') ? text : text + '\n');
      return;
    }
    let message = text.trim() || `status ${status}`;
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (typeof parsed.error === 'string') message = parsed.error;
    } catch {
      // plain text body: the text is the message
    }
    const code = headers[DEGRADED_HEADER] ? 'PARLEY_ERR_DEGRADED_UNAVAILABLE' : 'PARLEY_ERR_UPSTREAM_REJECTED';
    this.emitFinal('error', { code, message, status });
  }

  fail(error: unknown): void {
    if (this.finishedFlag) return;
    const e = toParleyError(error);
    this.emitFinal('error', { code: e.code, message: e.message, status: e.status });
  }

  step(step: PipelineStep): void {
    if (this.gone) return;
    this.emit('step', { stage: step.stage, messages: step.messages });
    if (step.truncatedMessages) this.emit('warning', { kind: 'history_truncated', truncated_messages: step.truncatedMessages });
    if (step.summaryUsed) this.emit('step', { stage: 'summary_used' });
  }

  // The conversations API's side.

  /** Emits a step event from outside the pipeline (e.g. `accepted`). */
  note(type: ReplyEventType, data: Record<string, unknown>): void {
    if (!this.gone) this.emit(type, data);
  }

  /**
   * Replays the events after `afterSeq` to `sub`, then (if the reply is still running) delivers
   * new ones as they come until it finishes or `detach` is called.
   * @returns detach
   * @throws ParleyError PARLEY_ERR_CONVERSATION_INVALID_EVENT_ID when `afterSeq` is beyond the
   *   last event, PARLEY_ERR_CONVERSATION_EVENTS_EXPIRED when events after it were dropped
   */
  attach(afterSeq: number, sub: ReplySubscriber): () => void {
    if (afterSeq > this.lastSeq) {
      throw new ParleyError('PARLEY_ERR_CONVERSATION_INVALID_EVENT_ID', `Last-Event-ID ${this.replyId}:${afterSeq} is beyond the last event of the reply (${this.replyId}:${this.lastSeq})`);
    }
    const firstHeld = this.events[0]?.seq ?? this.nextSeq;
    if (afterSeq + 1 < firstHeld) {
      throw new ParleyError('PARLEY_ERR_CONVERSATION_EVENTS_EXPIRED', `events of reply ${this.replyId} before ${this.replyId}:${firstHeld} are no longer held (conversations.replyBufferMaxEvents); read the stored message instead`);
    }
    for (const e of this.events) if (e.seq > afterSeq) sub.event(e);
    if (this.finishedFlag) {
      sub.end();
      return () => undefined;
    }
    this.subscribers.add(sub);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    return () => this.detach(sub);
  }

  /** Aborts the reply (cancel message, DELETE …/reply, grace period over). No-op once finished. */
  cancel(reason = 'the reply was cancelled'): void {
    if (this.finishedFlag || this.controller.signal.aborted) return;
    this.controller.abort(new ParleyError('PARLEY_ERR_CONVERSATION_REPLY_CANCELLED', reason));
  }

  /**
   * The pipeline returned: if no final event was emitted (the reply was cancelled, so the pipeline
   * wrote nothing more), emit the error event now; by then the partial reply is stored.
   */
  settle(): void {
    if (this.finishedFlag) return;
    const reason = this.controller.signal.reason;
    this.emitFinal('error', isParleyError(reason)
      ? { code: reason.code, message: reason.message, status: reason.status, incomplete: true }
      : { code: 'PARLEY_ERR_UPSTREAM_INCOMPLETE', message: 'the reply ended early', status: 502, incomplete: true });
  }

  private detach(sub: ReplySubscriber): void {
    if (!this.subscribers.delete(sub)) return;
    if (this.subscribers.size > 0 || this.finishedFlag || this.graceTimer) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      if (this.subscribers.size > 0 || this.finishedFlag) return;
      this.opts.onAbandoned?.(this);
      this.cancel(`nobody reconnected within ${this.opts.graceMs} ms (conversations.reconnectGraceMs)`);
    }, this.opts.graceMs);
    this.graceTimer.unref();
  }

  private line(line: string): void {
    let chunk: Record<string, unknown>;
    try {
      chunk = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof chunk.degraded === 'string') this.warnDegraded(chunk.degraded);
    for (const draft of replyEventsFromChunk(chunk)) this.emitDraft(draft);
  }

  private emitDraft(draft: ReplyEventDraft): void {
    if (draft.type === 'token') {
      this.firstTokenAtMs ??= performance.now();
      if (typeof draft.data.content === 'string') this.content += draft.data.content;
    }
    if (draft.type === 'done') {
      const now = performance.now();
      draft.data.timings = {
        ...(draft.data.timings as Record<string, unknown>),
        elapsed_ms: Math.round(now - this.startedAtMs),
        first_token_ms: this.firstTokenAtMs === undefined ? null : Math.round(this.firstTokenAtMs - this.startedAtMs),
      };
    }
    if (draft.type === 'done' || draft.type === 'error') this.emitFinal(draft.type, draft.data);
    else this.emit(draft.type, draft.data);
  }

  private warnDegraded(mode: string): void {
    if (this.degradedWarned) return;
    this.degradedWarned = true;
    this.emit('warning', { kind: 'degraded', mode, message: `degraded answer (${mode}): the model was not reached` });
  }

  private emitFinal(type: 'done' | 'error', data: Record<string, unknown>): void {
    if (this.finishedFlag) return;
    this.emit(type, data);
    this.finishedFlag = true;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    const subs = [...this.subscribers];
    this.subscribers.clear();
    for (const s of subs) s.end();
    this.opts.onFinished?.(this);
  }

  private emit(type: ReplyEventType, data: Record<string, unknown>): void {
    if (this.finishedFlag) return;
    const seq = this.nextSeq++;
    const e: ReplyEvent = { id: `${this.replyId}:${seq}`, seq, type, data };
    this.events.push(e);
    if (this.events.length > this.opts.maxEvents) this.events.shift();
    for (const s of this.subscribers) s.event(e);
  }
}
