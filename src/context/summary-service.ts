import { randomUUID } from 'node:crypto';
import type { SessionService } from '../conversations/session-service.js';
import type { StoredMessage } from '../conversations/session-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Lease } from '../queue/admission-queue.js';
import type { UpstreamEntry, UpstreamPool } from '../upstream/upstream-pool.js';
import { normalizeModelName } from '../upstream/model-name.js';
import type { ContextStore } from './context-store.js';
import type { ContextWindows } from './context-window.js';
import { loadTokenizer, rawMessageTokens, rawTextTokens, type TokenEstimator } from './token-estimator.js';

/** Opening line of the summary system message sent ahead of the kept turns. */
export const SUMMARY_PREFIX = 'Summary of the conversation so far:\n';

/** The system message that carries a session's running summary. */
export function summaryMessage(text: string): { role: 'system'; content: string } {
  return { role: 'system', content: SUMMARY_PREFIX + text };
}

export interface SummaryServiceOptions {
  /** Model that writes summaries; '' = the session's own model. */
  model: string;
  /** Longest summary in tokens (num_predict). */
  maxTokens: number;
  /** How often an idle upstream is looked for, and a running summary checks for waiting user requests, in ms. Default 20. */
  pollIntervalMs?: number;
}

export interface SummaryServiceDeps {
  pool: UpstreamPool;
  sessions: SessionService;
  store: ContextStore;
  estimator: TokenEstimator;
  windows: ContextWindows;
  logger: Logger;
  metrics?: Metrics | undefined;
  now: () => Date;
  opts: SummaryServiceOptions;
}

interface Job {
  chatModel: string;
  throughSeq: number;
}

/** Thrown inside a run that gave its slot back to a user request. */
class Yielded extends Error {}

/**
 * Folds history that fell out of the context window into a running summary per session, in the
 * background and at lower priority than user requests: a run starts only when the upstream has a
 * free slot and nobody waits for it, and it aborts (and retries later) as soon as a user request
 * starts waiting, so it never holds up a user's reply by more than `pollIntervalMs`. One run at a
 * time; requests for the same session coalesce. The summary request is
 * `POST /api/chat {"stream":false,"options":{"num_predict":maxTokens}}` with an instruction, the
 * summary so far and as many new messages as fit the summary model's window (the rest in the
 * next run). Failures are logged and counted; the next truncating turn asks again.
 */
export class SummaryService {
  private readonly jobs = new Map<string, Job>();
  private running: Promise<void> | undefined;
  private stopped = false;
  private current: AbortController | undefined;

  constructor(private readonly deps: SummaryServiceDeps) {}

  /** Asks for the session's summary to cover every message up to `throughSeq`. Never blocks. */
  request(sessionId: string, chatModel: string, throughSeq: number): void {
    if (this.stopped) return;
    const prev = this.jobs.get(sessionId);
    this.jobs.set(sessionId, { chatModel, throughSeq: Math.max(throughSeq, prev?.throughSeq ?? 0) });
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves when no summary is pending or running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops: the running summary is aborted, pending ones are dropped. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.jobs.clear();
    this.current?.abort();
    await this.running?.catch(() => undefined);
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.jobs.size > 0) {
      const [sessionId, job] = this.jobs.entries().next().value as [string, Job];
      this.jobs.delete(sessionId);
      try {
        const more = await this.runOnce(sessionId, job);
        if (more) this.request(sessionId, job.chatModel, job.throughSeq);
      } catch (e) {
        if (e instanceof Yielded) {
          this.deps.metrics?.contextSummaries.inc({ outcome: 'yielded' });
          if (!this.jobs.has(sessionId)) this.jobs.set(sessionId, job);
          await sleep(this.poll * 5);
        } else if (!this.stopped) {
          this.deps.metrics?.contextSummaries.inc({ outcome: 'failed' });
          this.deps.logger.warn({ err: e, sessionId }, 'context.summary_failed');
        }
      }
    }
  }

  private get poll(): number {
    return this.deps.opts.pollIntervalMs ?? 20;
  }

  /** One summary request; returns true when messages up to `job.throughSeq` remain unfolded. */
  private async runOnce(sessionId: string, job: Job): Promise<boolean> {
    const { store, sessions, estimator, windows, opts } = this.deps;
    const state = await store.get(sessionId);
    const prev = state?.summary ?? null;
    const from = prev?.throughSeq ?? 0;
    if (from >= job.throughSeq) return false;
    const pending = (await sessions.sendable(sessionId)).filter((m) => m.seq > from && m.seq <= job.throughSeq && m.role !== 'system');
    if (pending.length === 0) return false;
    const model = opts.model || job.chatModel;
    const window = (await windows.resolve(model, undefined)).tokens;
    await loadTokenizer();
    const instruction =
      'You keep a running summary of a conversation between a user and an assistant. Rewrite the summary so that it also covers the new messages. ' +
      `Keep names, facts, decisions and open questions. Answer with the summary only, in at most ${Math.max(10, Math.floor(opts.maxTokens * 0.7))} words.`;
    const head = `Summary so far:\n${prev?.text ?? '(none)'}\n\nNew messages:\n`;
    const margin = (n: number) => Math.ceil(n * 1.15) + 8;
    let budget = window - opts.maxTokens - margin(estimator.fromRaw(model, rawTextTokens(instruction) + rawTextTokens(head), 2));
    const lines: string[] = [];
    let last: StoredMessage | undefined;
    for (const m of pending) {
      const line = `${m.role}: ${m.content}\n`;
      const cost = margin(estimator.fromRaw(model, rawMessageTokens({ role: m.role, content: line }), 0));
      if (cost > budget) {
        // Even one message is too long for the summary model's window: fold in its beginning.
        if (lines.length === 0 && budget > 32) lines.push(line.slice(0, Math.floor((line.length * budget) / cost)) + ' …\n');
        if (lines.length === 0) throw new Error(`the summary model's window (${window} tokens) has no room for the messages to fold`);
        if (last === undefined) last = m;
        break;
      }
      budget -= cost;
      lines.push(line);
      last = m;
    }
    const body = {
      model,
      messages: [
        { role: 'system', content: instruction },
        { role: 'user', content: head + lines.join('') },
      ],
      stream: false,
      options: { num_predict: opts.maxTokens },
    };
    const reply = await this.call(model, body);
    const text = reply.content.trim();
    if (text === '') throw new Error('the summary model answered with an empty summary');
    const evalCount = reply.evalCount;
    const sameModel = normalizeModelName(model) === normalizeModelName(job.chatModel);
    const exact = sameModel && evalCount !== null && evalCount > 0;
    const tokens = exact ? evalCount + estimator.fromRaw(job.chatModel, rawTextTokens(SUMMARY_PREFIX), 1) : estimator.estimate(job.chatModel, summaryMessage(text));
    const through = last!.seq;
    await store.saveSummary(sessionId, {
      text,
      throughSeq: through,
      messages: (prev?.messages ?? 0) + pending.filter((m) => m.seq <= through).length,
      tokens,
      tokensExact: exact,
      model,
      createdAt: this.deps.now().toISOString(),
    });
    this.deps.metrics?.contextSummaries.inc({ outcome: 'made' });
    this.deps.logger.info({ sessionId, throughSeq: through, tokens, model }, 'context.summary_made');
    return through < job.throughSeq;
  }

  /** Runs the request on an idle upstream, giving the slot back as soon as a user request waits. */
  private async call(model: string, body: Record<string, unknown>): Promise<{ content: string; evalCount: number | null }> {
    const ac = new AbortController();
    this.current = ac;
    const { entry, lease } = await this.acquireWhenIdle(model, ac.signal);
    let yielded = false;
    const watch = setInterval(() => {
      if (entry.queue.depth > 0) {
        yielded = true;
        ac.abort();
      }
    }, this.poll);
    try {
      const res = await entry.node.request({ method: 'POST', path: '/api/chat', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: ac.signal });
      if (res.statusCode !== 200) throw new Error(`the upstream answered ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`);
      const json = (await res.body.json()) as { message?: { content?: unknown }; eval_count?: unknown };
      return { content: typeof json.message?.content === 'string' ? json.message.content : '', evalCount: typeof json.eval_count === 'number' ? json.eval_count : null };
    } catch (e) {
      if (yielded) throw new Yielded();
      throw e;
    } finally {
      clearInterval(watch);
      lease.release();
      this.current = undefined;
    }
  }

  private async acquireWhenIdle(model: string, signal: AbortSignal): Promise<{ entry: UpstreamEntry; lease: Lease }> {
    for (;;) {
      if (this.stopped || signal.aborted) throw new Error('summary service stopped');
      const entry = this.deps.pool.pickForCall(model);
      if (entry.queue.depth === 0 && entry.queue.active < entry.queue.snapshot().slots) {
        const lease = await entry.queue.acquire({ requestId: `summary-${randomUUID()}`, signal, meta: { model, endpoint: 'chat', purpose: 'summary' } });
        return { entry, lease };
      }
      await sleep(this.poll);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
