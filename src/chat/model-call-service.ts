import type { Dispatcher } from 'undici';
import { ParleyError, isParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import type { MessageInput } from '../conversations/session-store.js';
import type { SessionService } from '../conversations/session-service.js';
import type { UpstreamEntry, UpstreamPool } from '../upstream/upstream-pool.js';
import type { Lease } from '../queue/admission-queue.js';
import type { ClientStream } from './client-stream.js';
import { QueueFeedback } from './queue-feedback.js';
import { passHeaders, relayRaw, upstreamFailure } from './raw-relay.js';
import { relaySessionStream } from './session-relay.js';

/** The Ollama endpoints that run a model and therefore take a queue slot. */
export type ModelEndpoint = 'chat' | 'generate' | 'embed' | 'embeddings';

/** One model-running request, already parsed and validated by the API layer. */
export interface ModelCall {
  endpoint: ModelEndpoint;
  requestId: string;
  /** Model name as the client sent it. */
  model: string;
  /** Wire body to forward (unknown fields kept, Parley's own fields such as session_id removed). */
  body: Record<string, unknown>;
  /** Whether the client wants NDJSON (chat/generate; `stream` absent means true). False for embeddings. */
  clientStream: boolean;
  /** Set for `/api/chat` turns with a session: the stored history is prepended and the turn stored. */
  sessionId?: string | undefined;
  /** Opted in to position updates (`X-Parley-Queue-Updates: 1`); only honoured when streaming. */
  queueUpdates: boolean;
  /** Client headers worth forwarding (Accept, User-Agent); never Host. */
  forwardHeaders: Record<string, string>;
}

export interface ModelCallDeps {
  pool: UpstreamPool;
  sessions: SessionService;
  logger: Logger;
  positionUpdateIntervalMs: number;
}

/**
 * The one request pipeline for model calls: admit → lease a slot on an upstream that serves the
 * model → build the prompt (session history + new messages) → call upstream → relay the stream →
 * persist the turn. A client disconnect (the `signal`) leaves the queue at once, or aborts the
 * upstream request mid-reply; the partial reply is stored `incomplete`.
 */
export class ModelCallService {
  private draining = false;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly deps: ModelCallDeps) {}

  /** Runs the call and writes the whole response to `client`. Never throws: failures are answered. */
  async run(call: ModelCall, client: ClientStream, signal: AbortSignal): Promise<void> {
    this.inFlight++;
    const log = this.deps.logger.child({ reqId: call.requestId });
    let lease: Lease | undefined;
    try {
      if (this.draining) throw new ParleyError('PARLEY_ERR_SHUTTING_DOWN', 'Parley is shutting down; please try again shortly', { headers: { 'Retry-After': '5' } });
      const entry = this.deps.pool.pick(call.model);
      const streaming = call.clientStream && (call.endpoint === 'chat' || call.endpoint === 'generate');
      const feedback = streaming && call.queueUpdates ? new QueueFeedback(client, call, this.deps.positionUpdateIntervalMs) : undefined;
      lease = await entry.queue.acquire({
        requestId: call.requestId,
        signal,
        meta: { model: call.model, endpoint: call.endpoint },
        ...(feedback ? { onPosition: (u: { position: number; depth: number }) => feedback.update(u) } : {}),
      });
      feedback?.stop();
      if (lease.waitedMs > 0) log.debug({ waitedMs: lease.waitedMs, upstream: entry.node.url }, 'request.granted');
      await this.callUpstream(call, entry, client, signal);
    } catch (e) {
      if (signal.aborted || client.gone) {
        log.info({ code: isParleyError(e) ? e.code : undefined }, 'request.client_gone');
      } else {
        const level = isParleyError(e) && e.status < 500 ? 'info' : 'warn';
        log[level]({ err: e, code: isParleyError(e) ? e.code : 'PARLEY_ERR_INTERNAL' }, 'request.failed');
        client.fail(e);
      }
    } finally {
      lease?.release();
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

  private async callUpstream(call: ModelCall, entry: UpstreamEntry, client: ClientStream, signal: AbortSignal): Promise<void> {
    const body = { ...call.body };
    const newMessages = Array.isArray(body.messages) ? (body.messages as MessageInput[]) : [];
    const session = call.endpoint === 'chat' && call.sessionId !== undefined && newMessages.length > 0 ? call.sessionId : undefined;
    if (session !== undefined) {
      body.messages = [...(await this.deps.sessions.history(session)), ...newMessages];
      // Always stream upstream for a session turn, so a reply cut short can be kept as it was.
      body.stream = true;
    }
    const upstream = await entry.node.request({
      method: 'POST',
      path: `/api/${call.endpoint}`,
      headers: { 'content-type': 'application/json', 'x-request-id': call.requestId, ...call.forwardHeaders },
      body: JSON.stringify(body),
      signal,
    });
    if (upstream.statusCode !== 200) {
      await this.relayFailure(upstream, client);
      return;
    }
    if (session === undefined) {
      await relayRaw(upstream, client, entry.node.url);
      return;
    }
    const recorder = this.deps.sessions.recorder(session, call.model, newMessages);
    await relaySessionStream(upstream, client, { sessionId: session, clientStream: call.clientStream, recorder, upstreamUrl: entry.node.url });
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
