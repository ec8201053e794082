import type { Dispatcher } from 'undici';
import { ParleyError, isParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import type { UpstreamEntry } from '../upstream/upstream-pool.js';
import type { Lease } from '../queue/admission-queue.js';
import { ReplyCapture } from '../resilience/response-cache.js';
import { RequestRetry } from '../resilience/retry-policy.js';
import { UpstreamStatusFailure, isRetryableStatus, isUnavailability, isUpstreamStatusFailure, parseRetryAfterMs, timeoutKind } from '../resilience/upstream-failure.js';
import type { ClientStream } from './client-stream.js';
import type { ModelCall, ModelCallDeps } from './model-call-types.js';
import type { UsageTicket } from '../usage/usage-service.js';
import { UsageMeter } from '../usage/token-estimate.js';
import { normalizeModelName } from '../upstream/model-name.js';
import { QueueFeedback } from './queue-feedback.js';
import { answerDegraded, answerFromCache } from './fallback-answers.js';
import { prepareCall, type PreparedCall } from './prepare-call.js';
import { passHeaders, relayRaw, upstreamFailure } from './raw-relay.js';
import { relaySessionStream } from './session-relay.js';

export type { ModelCall, ModelCallDeps, ModelEndpoint, PipelineCache, PipelineLimits } from './model-call-types.js';

/** A reply whose status line came (200), with the slot it holds; its body is not read yet. */
interface OpenedReply {
  entry: UpstreamEntry;
  lease: Lease;
  upstream: Dispatcher.ResponseData;
  /** The attempt that opened it (0 = first), for logs. */
  attempt: number;
}

/** Per-call state shared by the attempts: whether an upstream's reply started, and usage accounting. */
interface CallState {
  committed: boolean;
  ticket?: UsageTicket | undefined;
  meter?: UsageMeter | undefined;
}

const NO_RETRY = new RequestRetry({ maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1, retryAfterCapMs: 0 });

/**
 * The one request pipeline for model calls: admit (memory guardian) → build the prompt (session
 * history + new messages, within the session caps) → [answer an identical deterministic request
 * from the cache] → pick an upstream that serves the model and whose breaker admits it → lease a
 * slot → send the request through its breaker, up to the upstream's status line → relay the
 * body (a fault mid-body is then reported to the breaker) → persist the turn.
 *
 * Resilience (issue 5): a failure before anything of the reply was relayed (connection refused or
 * reset, connect / first-byte timeout, 502/503/504, an open breaker) is retried with backoff on
 * another upstream that serves the model when there is one; never once the upstream's reply
 * started or any byte reached the client. When no upstream can serve, degraded mode answers
 * (error / cache / static), marked, and nothing of it is stored. A client disconnect (the
 * `signal`) leaves the queue at once, or aborts the upstream request mid-reply; the partial reply
 * is stored `incomplete`.
 */
export class ModelCallService {
  private draining = false;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly deps: ModelCallDeps) {}

  /** Runs the call and writes the whole response to `client`. Never throws: failures are answered. */
  async run(call: ModelCall, client: ClientStream, signal: AbortSignal): Promise<void> {
    this.inFlight++;
    const startedAt = performance.now();
    const { metrics } = this.deps;
    const log = this.deps.logger.child({ reqId: call.requestId });
    let outcome = 'ok';
    let prep: PreparedCall | undefined;
    let ticket: UsageTicket | undefined;
    const state: CallState = { committed: false };
    try {
      if (this.draining) throw new ParleyError('PARLEY_ERR_SHUTTING_DOWN', 'Parley is shutting down; please try again shortly', { headers: { 'Retry-After': '5' } });
      this.deps.guardian?.admit();
      const limits = this.deps.limits;
      if (limits) {
        client.limit({
          maxBufferedBytes: limits.streamBufferMaxBytes,
          onCutOff: (bufferedBytes) => {
            metrics?.slowClientsCut.inc();
            log.warn({ bufferedBytes, limitBytes: limits.streamBufferMaxBytes }, 'stream.client_too_slow');
          },
        });
      }
      prep = await prepareCall(call, this.deps);
      if (this.deps.usage) {
        ticket = await this.deps.usage.admit(call.caller, call.endpoint, call.model, prep.body);
        state.ticket = ticket;
        state.meter = new UsageMeter();
      }
      if (call.endpoint === 'chat') client.step?.({ stage: 'context_built', messages: Array.isArray(prep.body.messages) ? prep.body.messages.length : 0, truncatedMessages: prep.context?.droppedMessages, summaryUsed: prep.context?.summaryUsed });
      if (answerFromCache(call, prep, client, this.deps)) {
        outcome = 'cache';
        return;
      }
      const tried = new Set<UpstreamEntry>();
      const p = prep;
      // Retries and the breaker cover getting a reply (lease, connect, status line); the reply's
      // body is relayed after them, so a stream holds none of their state while it runs.
      const opened = await (this.deps.retry ?? NO_RETRY).execute(
        async (attempt) => {
          const entry = this.deps.pool.pickForCall(call.model, tried);
          tried.add(entry);
          return this.openOn(entry, attempt, call, p, client, signal, state, log);
        },
        {
          signal,
          // The rule: never retry once the upstream's reply started or any byte reached the client.
          mayRetry: () => !state.committed && !client.started,
          onRetry: (e, delayMs, attempt) => {
            const code = isParleyError(e) ? e.code : 'unknown';
            metrics?.retries.inc({ code });
            log.info({ code, status: isParleyError(e) ? e.status : undefined, delayMs, attempt }, 'request.retrying');
          },
        },
      );
      if (opened) await this.relayReply(opened, call, p, client, signal, state, log);
    } catch (e) {
      if (signal.aborted || client.gone) {
        outcome = client.cutOff ? 'client_too_slow' : 'client_gone';
        log.info({ code: isParleyError(e) ? e.code : undefined }, client.cutOff ? 'request.client_cut_off' : 'request.client_gone');
      } else if (!client.started && isUpstreamStatusFailure(e)) {
        // Retries used up on an upstream error status: relay it exactly as Ollama sent it.
        outcome = 'upstream_error';
        log.warn({ code: e.code, status: e.upstreamStatus, upstream: e.upstreamUrl }, 'request.failed');
        client.sendWhole(e.upstreamStatus, e.upstreamHeaders, e.upstreamBody);
      } else if (isUnavailability(e) && this.deps.degraded) {
        outcome = 'degraded';
        answerDegraded(call, prep, client, e, log, this.deps);
      } else {
        outcome = 'error';
        if (isParleyError(e) && e.code === 'PARLEY_ERR_OVERLOADED') metrics?.shedRequests.inc();
        const level = isParleyError(e) && e.status < 500 ? 'info' : 'warn';
        log[level]({ err: e, code: isParleyError(e) ? e.code : 'PARLEY_ERR_INTERNAL' }, 'request.failed');
        client.fail(e);
      }
    } finally {
      const durationMs = performance.now() - startedAt;
      const counts = state.meter?.counts();
      ticket?.settle({ counts, committed: state.committed, error: outcome !== 'ok' && outcome !== 'cache', durationMs });
      if (counts?.loadDurationNs !== undefined) metrics?.modelLoadDuration.observe({ model: normalizeModelName(call.model) }, counts.loadDurationNs / 1e9);
      metrics?.requestDuration.observe({ endpoint: call.endpoint, outcome }, durationMs / 1000);
      if (--this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Stops taking new calls; running and queued ones continue. */
  beginDrain(): void {
    this.draining = true;
  }

  /** Resolves when no call is running or queued. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Model calls running or queued now. */
  get active(): number {
    return this.inFlight;
  }

  /**
   * One attempt on one upstream: lease a slot, then send the request through its breaker and wait
   * for the status line. Resolves with the leased, opened reply (status 200; the caller relays it
   * and releases the lease), or undefined when the upstream refused the request and its answer was
   * relayed as it came (a 404, a model that cannot load).
   * @throws the attempt's failure (retryable ones are retried by the caller), after recording it
   */
  private async openOn(entry: UpstreamEntry, attempt: number, call: ModelCall, prep: PreparedCall, client: ClientStream, signal: AbortSignal, state: CallState, log: Logger): Promise<OpenedReply | undefined> {
    const streaming = call.clientStream && (call.endpoint === 'chat' || call.endpoint === 'generate');
    const feedback = attempt === 0 && streaming && call.queueUpdates ? new QueueFeedback(client, call, this.deps.positionUpdateIntervalMs) : undefined;
    let lease: Lease | undefined;
    try {
      lease = await entry.queue.acquire({
        requestId: call.requestId,
        signal,
        meta: { model: call.model, endpoint: call.endpoint, key: call.caller ? `${call.caller.prefix} (${call.caller.name})` : 'anonymous' },
        model: normalizeModelName(call.model),
        ...(state.ticket ? { fair: { key: state.ticket.fairKey, weight: state.ticket.limits.weight, cost: state.ticket.cost, maxConcurrent: state.ticket.limits.maxConcurrent, maxQueued: state.ticket.limits.maxQueued } } : {}),
        ...(feedback ? { onPosition: (u: { position: number; depth: number }) => feedback.update(u) } : {}),
      });
      feedback?.stop();
      if (lease.waitedMs > 0) log.debug({ waitedMs: lease.waitedMs, upstream: entry.node.url }, 'request.granted');
      const upstream = await entry.breaker.execute(() => this.openUpstream(call, prep, entry, client, signal));
      if (upstream === undefined) {
        this.deps.pool.recordCall(entry, null);
        return undefined;
      }
      // From here on the reply is this upstream's: nothing is retried any more.
      state.committed = true;
      const opened: OpenedReply = { entry, lease, upstream, attempt };
      lease = undefined;
      return opened;
    } catch (e) {
      feedback?.stop();
      this.noteUpstreamFailure(entry, e, attempt, client, signal, state, log);
      throw e;
    } finally {
      lease?.release();
    }
  }

  /** Records an upstream's failure (health, timeout metrics, a log line); client aborts and an open breaker are not its failures. */
  private noteUpstreamFailure(entry: UpstreamEntry, e: unknown, attempt: number, client: ClientStream, signal: AbortSignal, state: CallState, log: Logger): void {
    if (signal.aborted || client.gone || !isParleyError(e) || !e.code.startsWith('PARLEY_ERR_UPSTREAM_') || e.code === 'PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN') return;
    this.deps.pool.recordCall(entry, isUpstreamStatusFailure(e) ? `status_${e.upstreamStatus}` : e.code);
    const kind = timeoutKind(e);
    if (kind) this.deps.metrics?.upstreamTimeouts.inc({ upstream: entry.node.url, kind });
    log.warn({ code: e.code, upstream: entry.node.url, attempt, committed: state.committed }, 'upstream.call_failed');
  }

  /**
   * Sends the request and waits for the upstream's status line. Resolves with a 200 reply, or
   * undefined once a non-retryable refusal was relayed to the client.
   * @throws UpstreamStatusFailure for a retryable status (502/503/504) while nothing reached the client;
   *   the upstream node's connect / first-byte / connection errors (ParleyError PARLEY_ERR_UPSTREAM_*)
   */
  private async openUpstream(call: ModelCall, prep: PreparedCall, entry: UpstreamEntry, client: ClientStream, signal: AbortSignal): Promise<Dispatcher.ResponseData | undefined> {
    const upstream = await entry.node.request({
      method: 'POST',
      path: `/api/${call.endpoint}`,
      headers: { 'content-type': 'application/json', 'x-request-id': call.requestId, ...call.forwardHeaders },
      body: prep.json,
      signal,
    });
    if (upstream.statusCode === 200) return upstream;
    if (!client.started && isRetryableStatus(upstream.statusCode)) {
      const bytes = Buffer.from(await upstream.body.arrayBuffer());
      throw new UpstreamStatusFailure(upstream.statusCode, passHeaders(upstream, false), bytes, parseRetryAfterMs(upstream.headers['retry-after']), entry.node.url);
    }
    await this.relayFailure(upstream, client);
    return undefined;
  }

  /**
   * Relays an opened reply to the client (and into the session, the cache, the usage meter), then
   * releases its lease. The breaker learns how the reply ended: whole, or broken mid-body (a fault).
   * @throws the relay's failure (PARLEY_ERR_UPSTREAM_STREAM_BROKEN, …_IDLE_TIMEOUT, a client cut off)
   */
  private async relayReply(opened: OpenedReply, call: ModelCall, prep: PreparedCall, client: ClientStream, signal: AbortSignal, state: CallState, log: Logger): Promise<void> {
    const { entry, upstream } = opened;
    try {
      await this.relayBody(upstream, call, prep, entry, client, state);
      entry.breaker.recordSuccess();
      this.deps.pool.recordCall(entry, null);
    } catch (e) {
      if (!signal.aborted && !client.gone) await entry.breaker.recordFault(e);
      this.noteUpstreamFailure(entry, e, opened.attempt, client, signal, state, log);
      throw e;
    } finally {
      opened.lease.release();
    }
  }

  private async relayBody(upstream: Dispatcher.ResponseData, call: ModelCall, prep: PreparedCall, entry: UpstreamEntry, client: ClientStream, state: CallState): Promise<void> {
    const capture = prep.key && (call.endpoint === 'chat' || call.endpoint === 'generate') ? new ReplyCapture(call.endpoint, 1024 * 1024) : undefined;
    const meter = state.meter;
    const tap = capture || meter ? (b: Buffer) => (capture?.push(b), meter?.push(b)) : undefined;
    if (prep.session === undefined) {
      await relayRaw(upstream, client, entry.node.url, tap);
    } else {
      const recorder = this.deps.sessions.recorder(prep.session, call.model, prep.newMessages);
      const plan = prep.context;
      const context = this.deps.context;
      // Token counts from the upstream's figures, written in the same transaction as the completed turn.
      if (plan && context) recorder.accountWith((turn) => context.turnTokens(plan, turn));
      const truncated = plan !== undefined && plan.droppedMessages > 0;
      await relaySessionStream(upstream, client, {
        sessionId: prep.session,
        clientStream: call.clientStream,
        recorder,
        upstreamUrl: entry.node.url,
        tap,
        headers: { ...(prep.threaded ? { 'X-Session-Id': prep.session } : {}), ...(truncated ? { 'X-Parley-Truncated': String(plan.droppedMessages) } : {}) },
        finalFields: truncated ? { parley: { truncated_messages: plan.droppedMessages, summary: plan.summaryUsed } } : undefined,
      });
    }
    const reply = capture?.result();
    if (reply && prep.key && this.deps.cache) {
      this.deps.cache.store.set(prep.key, reply);
      this.deps.metrics?.cacheEntries.set(this.deps.cache.store.size);
      this.deps.metrics?.cacheBytes.set(this.deps.cache.store.bytes);
    }
  }

  /** An upstream error before any chunk: relayed with its own status and bytes, as Ollama sent them. */
  private async relayFailure(upstream: Dispatcher.ResponseData, client: ClientStream): Promise<void> {
    if (client.started) {
      client.fail(await upstreamFailure(upstream));
      return;
    }
    const bytes = Buffer.from(await upstream.body.arrayBuffer());
    client.sendWhole(upstream.statusCode, passHeaders(upstream, false), bytes);
  }
}
