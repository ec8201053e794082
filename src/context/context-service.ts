import { ParleyError } from '../errors/parley-error.js';
import type { MessageInput, MessageTokenCount, StoredMessage } from '../conversations/session-store.js';
import type { FinishedTurn } from '../conversations/turn-recorder.js';
import { toWireMessage } from '../conversations/session-service.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ContextStore } from './context-store.js';
import type { ContextWindows } from './context-window.js';
import { summaryMessage, type SummaryService } from './summary-service.js';
import { loadTokenizer, rawMessageTokens, rawTextTokens, tokenizerLoaded, type TokenEstimator } from './token-estimator.js';
import { fitToWindow, replyReserve } from './truncation.js';

/** Estimated (not exact) counts are inflated by this share when fitting, so a low estimate cannot overflow the window. */
export const ESTIMATE_SAFETY_RATIO = 0.1;

export interface ContextServiceDeps {
  estimator: TokenEstimator;
  windows: ContextWindows;
  store: ContextStore;
  /** Absent when `context.summary` is off. */
  summaries?: SummaryService | undefined;
  logger: Logger;
  metrics?: Metrics | undefined;
  now: () => Date;
  /** Tokens kept for the reply when the request has no num_predict. */
  replyReserveTokens: number;
}

/** What was sent upstream for one session turn: needed to derive exact counts when the turn is done. */
export interface ContextPlan {
  sessionId: string;
  model: string;
  windowTokens: number;
  /** Stored messages and the summary sent ahead of the new messages, with their counts. */
  sent: Array<{ tokens: number; exact: boolean }>;
  /** The new messages (all stored): raw tokenizer count and estimate. */
  incoming: Array<{ raw: number; estimate: number }>;
  /** False when some new messages (ones before the last new user message) were left out. */
  allIncomingSent: boolean;
  droppedMessages: number;
  droppedTurns: number;
  summaryUsed: boolean;
  /** Parley's count of the prompt it sent, in tokens. */
  promptTokens: number;
}

/**
 * Context management for session turns (issue 4): resolves the model's window, fits stored
 * history + the running summary + the new messages into it (see truncation.ts), records what was
 * left out, asks for a summary of it, and after the turn turns the upstream's
 * `prompt_eval_count` / `eval_count` into exact per-message counts (and calibration).
 */
export class ContextService {
  constructor(private readonly deps: ContextServiceDeps) {}

  /**
   * The messages to send upstream for a session turn. Read `stored` after `settled(sessionId)`,
   * so the previous turn's exact counts are in it. `newSession`: the session does not exist yet
   * (its context state is not read).
   * @throws ParleyError PARLEY_ERR_CONTEXT_TOO_LONG (400) when the system messages plus the new
   *   messages (plus the reply reserve) exceed the window; PARLEY_ERR_STORAGE_UNAVAILABLE
   */
  async fit(input: { sessionId: string; model: string; options: unknown; stored: StoredMessage[]; incoming: MessageInput[]; newSession?: boolean | undefined }): Promise<{ messages: MessageInput[]; plan: ContextPlan }> {
    const { estimator, store, summaries } = this.deps;
    const { sessionId, model } = input;
    const window = await this.deps.windows.resolve(model, input.options);
    if (!tokenizerLoaded()) await loadTokenizer();
    const reserve = replyReserve(input.options, this.deps.replyReserveTokens);
    const margin = (tokens: number, exact: boolean) => (exact ? tokens : Math.ceil(tokens * (1 + ESTIMATE_SAFETY_RATIO)));
    // New messages before the last new user message (a client importing history) may be left
    // out like stored history; they are stored all the same. Their seq is predicted.
    const lastUser = input.incoming.map((m) => m.role).lastIndexOf('user');
    const split = lastUser < 0 ? 0 : lastUser;
    let seq = input.stored.at(-1)?.seq ?? 0;
    const incoming = input.incoming.map((m, i) => {
      const raw = rawMessageTokens(m);
      const estimate = estimator.fromRaw(model, raw, 1);
      return { role: m.role, message: m, seq: ++seq, raw, estimate, count: estimate, exact: false, stored: undefined, tokens: margin(estimate, false), early: i < split };
    });
    const history = [
      ...input.stored.map((m) => {
        const exact = m.tokensExact === true && m.tokens != null;
        const tokens = m.tokens ?? estimator.estimate(model, m);
        return { role: m.role, message: toWireMessage(m), seq: m.seq, count: tokens, exact, stored: m, tokens: margin(tokens, exact), early: false };
      }),
      ...incoming.filter((m) => m.early),
    ];
    // A session that does not exist yet has no context state to read.
    const state = summaries && input.newSession !== true ? await store.get(sessionId) : undefined;
    const summary = state?.summary ?? null;
    const r = fitToWindow({
      history,
      incoming: incoming.filter((m) => !m.early),
      summaryTokens: summary ? margin(summary.tokens, summary.tokensExact) : null,
      windowTokens: window.tokens,
      reserveTokens: reserve,
    });
    if (!r.fits) {
      throw new ParleyError(
        'PARLEY_ERR_CONTEXT_TOO_LONG',
        `the system prompt and the new message need about ${r.requiredTokens} tokens, but model '${model}' has a context window of ${window.tokens} tokens ` +
          `(${reserve} kept for the reply, so ${r.availableTokens} are left); shorten them or use a model with a larger context`,
      );
    }
    const messages: MessageInput[] = [];
    const sent: ContextPlan['sent'] = [];
    let summaryPlaced = !r.summary;
    for (const h of r.kept) {
      if (!summaryPlaced && h.role !== 'system') {
        messages.push(summaryMessage(summary!.text));
        sent.push({ tokens: summary!.tokens, exact: summary!.tokensExact });
        summaryPlaced = true;
      }
      messages.push(h.message);
      if (h.stored) sent.push({ tokens: h.count, exact: h.exact });
    }
    if (!summaryPlaced) {
      messages.push(summaryMessage(summary!.text));
      sent.push({ tokens: summary!.tokens, exact: summary!.tokensExact });
    }
    messages.push(...incoming.filter((m) => !m.early).map((m) => m.message));
    const droppedThroughSeq = r.dropped.length > 0 ? r.dropped[r.dropped.length - 1]!.seq : null;
    if (r.dropped.length > 0 || (state?.truncatedMessages ?? 0) > 0) {
      await store.recordTurn(sessionId, { windowTokens: window.tokens, droppedMessages: r.dropped.length, droppedTurns: r.droppedTurns, droppedThroughSeq, now: this.deps.now().toISOString() });
    }
    if (r.dropped.length > 0) {
      this.deps.metrics?.contextTruncations.inc();
      this.deps.metrics?.contextDroppedMessages.inc(r.dropped.length);
      this.deps.logger.info({ sessionId, droppedMessages: r.dropped.length, windowTokens: window.tokens, promptTokens: r.promptTokens, summary: r.summary }, 'context.truncated');
      if (summaries && droppedThroughSeq !== null && droppedThroughSeq > (summary?.throughSeq ?? 0)) summaries.request(sessionId, model, droppedThroughSeq);
    }
    return {
      messages,
      plan: {
        sessionId,
        model,
        windowTokens: window.tokens,
        sent,
        incoming: incoming.map((m) => ({ raw: m.raw, estimate: m.estimate })),
        allIncomingSent: !r.dropped.some((d) => d.early),
        droppedMessages: r.dropped.length,
        droppedTurns: r.droppedTurns,
        summaryUsed: r.summary,
        promptTokens: r.promptTokens,
      },
    };
  }

  /**
   * After a turn: the token counts of its new messages and reply, which the recorder stores with
   * the completed turn (one transaction). Exact when the upstream's figures allow it: the reply
   * costs `eval_count` + the model's per-message overhead; the new messages together cost
   * `prompt_eval_count` − the exact counts of everything sent before them (split between them in
   * proportion to their estimates), provided every one of those was exact and the prompt was not
   * cut by the upstream (`prompt_eval_count` < window). Otherwise estimates. Learns the model's
   * calibration from the exact figures. Synchronous: `fit` loaded the tokenizer.
   */
  turnTokens(plan: ContextPlan, turn: FinishedTurn): MessageTokenCount[] | undefined {
    const { estimator, metrics } = this.deps;
    if (turn.messageIds.length !== plan.incoming.length) return undefined;
    const model = plan.model;
    const m = turn.complete ? turn.metrics : null;
    const overhead = Math.round(estimator.calibration(model).overheadTokens);
    // The reply. Its raw count (the BPE pass over the whole reply, the larger part of this
    // method's cost) is needed for an estimate, to split eval_count between thinking and content,
    // and for calibration, which takes a sample of replies once the model is calibrated.
    const rawThinking = turn.thinking ? rawTextTokens(turn.thinking) : 0;
    const evalCount = m?.completionTokens ?? null;
    let reply: { tokens: number; exact: boolean };
    if (evalCount !== null && evalCount > 0) {
      const learn = estimator.wantsReplySample(model);
      const rawContent = learn || rawThinking > 0 ? rawTextTokens(turn.content) : 0;
      if (learn) estimator.observe(model, { rawTokens: rawContent + rawThinking, messages: 0, exactTokens: evalCount });
      const share = rawThinking > 0 ? rawContent / (rawContent + rawThinking) : 1;
      reply = { tokens: Math.round(evalCount * share) + overhead, exact: rawThinking === 0 };
    } else {
      reply = { tokens: estimator.fromRaw(model, rawTextTokens(turn.content), 1), exact: false };
    }
    // The new messages.
    const prompt = m?.promptTokens ?? null;
    const before = plan.sent.reduce((n, s) => n + s.tokens, 0);
    const group = prompt === null ? -1 : prompt - before;
    const estimateSum = plan.incoming.reduce((n, i) => n + i.estimate, 0);
    let counts: Array<{ tokens: number; exact: boolean }>;
    if (prompt !== null && plan.allIncomingSent && prompt < plan.windowTokens && plan.sent.every((s) => s.exact) && group >= plan.incoming.length) {
      const rawSum = plan.incoming.reduce((n, i) => n + i.raw, 0);
      estimator.observe(model, { rawTokens: rawSum, messages: plan.incoming.length, exactTokens: group });
      metrics?.contextEstimateError.observe(Math.abs(estimateSum - group) / group);
      counts = splitProportionally(group, plan.incoming.map((i) => i.estimate)).map((tokens) => ({ tokens, exact: true }));
    } else {
      counts = plan.incoming.map((i) => ({ tokens: i.estimate, exact: false }));
    }
    return [...turn.messageIds.map((id, i) => ({ id, ...counts[i]! })), { id: turn.assistantMessageId, ...reply }];
  }

  /**
   * Resolves once the session's token accounting of finished turns is written. The counts are now
   * written with the completed turn itself, so this resolves at once (kept for callers that wait).
   */
  async settled(_sessionId: string): Promise<void> {}
}

/** Splits `total` into integers proportional to `weights` that add up to `total`. */
export function splitProportionally(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (weights.length === 0) return [];
  if (sum <= 0) return weights.map((_, i) => (i === weights.length - 1 ? total - Math.floor(total / weights.length) * (weights.length - 1) : Math.floor(total / weights.length)));
  const out = weights.map((w) => Math.floor((total * w) / sum));
  out[out.length - 1]! += total - out.reduce((a, b) => a + b, 0);
  return out;
}
