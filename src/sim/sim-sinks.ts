import type { Metrics, Sink } from './sim-engine.js';
import type { Piece, ToolCallOut } from './sim-reply.js';
import { tokenIds } from './sim-tokens.js';
import { type Exchange, NdjsonStream, createdAt } from './sim-wire.js';

/**
 * Native /api/chat and /api/generate renderers: NDJSON chunks when streaming, one JSON object
 * (joined content, collected tool calls, metrics of the final chunk) with `stream:false`.
 * Field order follows Go's api.ChatResponse / api.GenerateResponse.
 */

/** `/api/chat` chunks. `model` is echoed as the client sent it. */
export class ChatSink implements Sink {
  private readonly out: NdjsonStream;
  private content = '';
  private thinking = '';
  private calls: ToolCallOut[] = [];

  constructor(
    private readonly ex: Exchange,
    private readonly model: string,
    private readonly stream: boolean,
  ) {
    this.out = new NdjsonStream(ex);
  }

  async piece(p: Piece): Promise<boolean> {
    if (!this.stream) {
      if (p.kind === 'content') this.content += p.text;
      else if (p.kind === 'thinking') this.thinking += p.text;
      else this.calls.push(...p.calls);
      return !this.ex.gone;
    }
    const message: Record<string, unknown> = { role: 'assistant', content: p.kind === 'content' ? p.text : '' };
    if (p.kind === 'thinking') message.thinking = p.text;
    if (p.kind === 'tools') message.tool_calls = p.calls;
    return this.out.line({ model: this.model, created_at: createdAt(), message, done: false });
  }

  private message(): Record<string, unknown> {
    const m: Record<string, unknown> = { role: 'assistant', content: this.stream ? '' : this.content };
    if (!this.stream && this.thinking) m.thinking = this.thinking;
    if (!this.stream && this.calls.length > 0) m.tool_calls = this.calls;
    return m;
  }

  async done(reason: 'stop' | 'length', metrics: Metrics): Promise<void> {
    const final = { model: this.model, created_at: createdAt(), message: this.message(), done: true, done_reason: reason, ...metrics };
    if (!this.stream) return this.ex.json(200, final);
    await this.out.line(final);
    this.out.end();
  }

  async error(message: string): Promise<void> {
    if (!this.stream) return this.ex.fail(500, message);
    await this.out.error(message);
  }

  async noDone(): Promise<void> {
    if (!this.stream) return this.ex.json(200, { model: this.model, created_at: createdAt(), message: this.message(), done: false });
    this.out.end();
  }
}

/** `/api/generate` chunks; the final one carries `context` unless raw. */
export class GenerateSink implements Sink {
  private readonly out: NdjsonStream;
  private response = '';
  private thinking = '';

  constructor(
    private readonly ex: Exchange,
    private readonly model: string,
    private readonly stream: boolean,
    /** Token ids before the reply (request context + prompt), or undefined for raw mode. */
    private readonly contextPrefix: number[] | undefined,
  ) {
    this.out = new NdjsonStream(ex);
  }

  async piece(p: Piece): Promise<boolean> {
    if (p.kind === 'thinking') this.thinking += p.text;
    else if (p.kind === 'content') this.response += p.text;
    if (!this.stream) return !this.ex.gone;
    const chunk: Record<string, unknown> = { model: this.model, created_at: createdAt(), response: p.kind === 'content' ? p.text : '' };
    if (p.kind === 'thinking') chunk.thinking = p.text;
    chunk.done = false;
    return this.out.line(chunk);
  }

  private final(done: boolean, reason?: string, metrics?: Metrics): Record<string, unknown> {
    const o: Record<string, unknown> = { model: this.model, created_at: createdAt(), response: this.stream ? '' : this.response };
    if (!this.stream && this.thinking) o.thinking = this.thinking;
    o.done = done;
    if (reason) o.done_reason = reason;
    if (done && this.contextPrefix) o.context = [...this.contextPrefix, ...tokenIds(this.response)];
    return { ...o, ...metrics };
  }

  async done(reason: 'stop' | 'length', metrics: Metrics): Promise<void> {
    const final = this.final(true, reason, metrics);
    if (!this.stream) return this.ex.json(200, final);
    await this.out.line(final);
    this.out.end();
  }

  async error(message: string): Promise<void> {
    if (!this.stream) return this.ex.fail(500, message);
    await this.out.error(message);
  }

  async noDone(): Promise<void> {
    if (!this.stream) return this.ex.json(200, this.final(false));
    this.out.end();
  }
}
