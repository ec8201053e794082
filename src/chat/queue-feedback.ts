import { NDJSON, type ClientStream } from './client-stream.js';

/**
 * Position feedback for a client that opted in with `X-Parley-Queue-Updates: 1` on a streaming
 * chat or generate request. The response starts at once (200, NDJSON) and each position change
 * is one extra chunk with empty content, shaped like the endpoint's own chunks so stock clients
 * read it as an empty token:
 * `{"model":"…","created_at":"…","message":{"role":"assistant","content":""},"done":false,"queue":{"position":3,"depth":7}}`
 * (`"response":""` instead of `message` for generate). Updates closer together than
 * `minIntervalMs` are coalesced (the latest is sent when the interval ends); position 0 (granted)
 * is always sent.
 */
export class QueueFeedback {
  private lastSentAt = 0;
  private pending: { position: number; depth: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly prefix: string;
  private readonly suffix: string;

  constructor(
    private readonly client: ClientStream,
    call: { endpoint: string; model: string; sessionId?: string | undefined },
    private readonly minIntervalMs: number,
  ) {
    const empty = call.endpoint === 'chat' ? '"message":{"role":"assistant","content":""}' : '"response":""';
    this.prefix = `{"model":${JSON.stringify(call.model)},"created_at":"`;
    this.suffix = `",${empty},"done":false${call.sessionId ? `,"session_id":${JSON.stringify(call.sessionId)}` : ''},"queue":`;
    client.start(200, { 'Content-Type': NDJSON });
  }

  update(u: { position: number; depth: number }): void {
    const now = Date.now();
    if (u.position === 0 || now - this.lastSentAt >= this.minIntervalMs) {
      this.send(u, now);
      return;
    }
    this.pending = u;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.pending) this.send(this.pending, Date.now());
      }, this.minIntervalMs - (now - this.lastSentAt));
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  private send(u: { position: number; depth: number }, now: number): void {
    this.pending = undefined;
    this.lastSentAt = now;
    void this.client.write(`${this.prefix}${new Date(now).toISOString()}${this.suffix}{"position":${u.position},"depth":${u.depth}}}\n`);
  }
}
