import type { Metrics, Sink } from './sim-engine.js';
import type { Piece, ToolCallOut } from './sim-reply.js';
import { tokenIds } from './sim-tokens.js';
import { type Exchange, NdjsonStream, createdAt } from './sim-wire.js';

/**
 * Native /api/chat and /api/generate renderers: NDJSON chunks when streaming, one JSON object
 * (joined content, collected tool calls, metrics of the final chunk) with `stream:false`.
 * Field order follows Go's api.ChatResponse / api.GenerateResponse.
 */

/**
 * What both renderers share: how a reply ends. Streaming, the final object is the last NDJSON
 * line; with `stream:false` it is the whole response. Subclasses say what the final object holds.
 */
abstract class NativeSink implements Sink {
  protected readonly out: NdjsonStream;

  constructor(
    protected readonly ex: Exchange,
    protected readonly model: string,
    protected readonly stream: boolean,
  ) {
    this.out = new NdjsonStream(ex);
  }

  abstract piece(p: Piece): Promise<boolean>;

  /** The final object (`done:false` for a stream cut without done, as Ollama's repetition guard does). */
  protected abstract final(done: boolean, reason?: string, metrics?: Metrics): Record<string, unknown>;

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

/** `/api/chat` chunks. `model` is echoed as the client sent it. */
export class ChatSink extends NativeSink {
  private content = '';
  private thinking = '';
  private calls: ToolCallOut[] = [];

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

  protected final(done: boolean, reason?: string, metrics?: Metrics): Record<string, unknown> {
    const message: Record<string, unknown> = { role: 'assistant', content: this.stream ? '' : this.content };
    if (!this.stream && this.thinking) message.thinking = this.thinking;
    if (!this.stream && this.calls.length > 0) message.tool_calls = this.calls;
    const o: Record<string, unknown> = { model: this.model, created_at: createdAt(), message, done };
    if (reason) o.done_reason = reason;
    return { ...o, ...metrics };
  }
}

/** `/api/generate` chunks; the final one carries `context` unless raw. */
export class GenerateSink extends NativeSink {
  private response = '';
  private thinking = '';

  constructor(
    ex: Exchange,
    model: string,
    stream: boolean,
    /** Token ids before the reply (request context + prompt), or undefined for raw mode. */
    private readonly contextPrefix: number[] | undefined,
  ) {
    super(ex, model, stream);
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

  protected final(done: boolean, reason?: string, metrics?: Metrics): Record<string, unknown> {
    const o: Record<string, unknown> = { model: this.model, created_at: createdAt(), response: this.stream ? '' : this.response };
    if (!this.stream && this.thinking) o.thinking = this.thinking;
    o.done = done;
    if (reason) o.done_reason = reason;
    if (done && this.contextPrefix) o.context = [...this.contextPrefix, ...tokenIds(this.response)];
    return { ...o, ...metrics };
  }
}
