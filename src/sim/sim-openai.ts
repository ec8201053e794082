import type { SimContext } from './sim-context.js';
import type { Metrics, Sink } from './sim-engine.js';
import { prepareChat, runChat } from './sim-generate.js';
import type { Piece } from './sim-reply.js';
import { type Exchange, goJson } from './sim-wire.js';

/**
 * OpenAI compatibility (reference §5): POST /v1/chat/completions (JSON, or SSE with a role delta,
 * content/reasoning/tool_calls deltas, a finish chunk with `delta:{}`, an optional usage chunk and
 * `data: [DONE]`) and GET /v1/models[/:model]. Errors use OpenAI's shape. A failure after SSE
 * started reproduces Ollama's quirk: one empty delta, then the stream ends without a finish chunk
 * or `[DONE]`.
 */

type Obj = Record<string, unknown>;

const EFFORT: Record<string, boolean | string> = { none: false, minimal: 'low', low: 'low', medium: 'medium', high: 'high', max: 'max', xhigh: 'max', ultra: 'max' };

/** Translates an OpenAI request into a native chat body; returns the 400 text on failure. */
export function toNativeChat(body: Obj): { native: Obj } | { error: string } {
  const msgs = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
  if (msgs.length === 0) return { error: "[] is too short - 'messages'" };
  const messages: Obj[] = [];
  for (const raw of msgs) {
    const m = (raw && typeof raw === 'object' ? raw : {}) as Obj;
    const role = typeof m.role === 'string' ? m.role : 'user';
    const extra: Obj = {};
    if (Array.isArray(m.tool_calls)) {
      extra.tool_calls = (m.tool_calls as Obj[]).map((tc) => {
        const fn = (tc.function ?? {}) as Obj;
        let args: unknown = {};
        try {
          args = typeof fn.arguments === 'string' ? JSON.parse(fn.arguments) : (fn.arguments ?? {});
        } catch {
          args = {};
        }
        return { id: tc.id, function: { name: fn.name, arguments: args } };
      });
    }
    if (typeof m.tool_call_id === 'string') extra.tool_call_id = m.tool_call_id;
    if (typeof m.name === 'string' && role === 'tool') extra.tool_name = m.name;
    if (typeof m.content === 'string' || m.content === null || m.content === undefined) {
      messages.push({ role, content: m.content ?? '', ...extra });
      continue;
    }
    if (!Array.isArray(m.content)) return { error: 'invalid message content type' };
    for (const part of m.content as Obj[]) {
      if (part?.type === 'text') messages.push({ role, content: String(part.text ?? ''), ...extra });
      else if (part?.type === 'image_url') {
        const iu = part.image_url as Obj | string | undefined;
        const url = typeof iu === 'string' ? iu : String(iu?.url ?? '');
        if (/^https?:/i.test(url)) return { error: 'image URLs are not currently supported, please use base64 encoded data instead' };
        const d = /^data:(?:image\/(?:png|jpeg|jpg|webp))?;base64,(.*)$/s.exec(url);
        if (!d) return { error: 'invalid image input' };
        messages.push({ role, content: '', images: [d[1]], ...extra });
      } else return { error: 'invalid message format' };
    }
  }
  const options: Obj = { temperature: body.temperature ?? 1.0, top_p: body.top_p ?? 1.0 };
  if (typeof body.max_tokens === 'number') options.num_predict = body.max_tokens;
  if (typeof body.seed === 'number') options.seed = body.seed;
  if (typeof body.stop === 'string') options.stop = [body.stop];
  else if (Array.isArray(body.stop)) options.stop = body.stop;
  const native: Obj = { model: body.model, messages, options, stream: body.stream === true };
  if (Array.isArray(body.tools)) native.tools = body.tools;
  const rf = body.response_format as Obj | undefined;
  if (rf?.type === 'json_object') native.format = 'json';
  else if (rf?.type === 'json_schema') native.format = (rf.json_schema as Obj | undefined)?.schema ?? 'json';
  const effort = body.reasoning_effort ?? (body.reasoning as Obj | undefined)?.effort;
  if (effort !== undefined && effort !== null) {
    const think = typeof effort === 'string' ? EFFORT[effort] : undefined;
    if (think === undefined) return { error: `invalid reasoning value: ${JSON.stringify(effort)} (must be "minimal", "low", "medium", "high", "max", or "none")` };
    native.think = think;
  }
  return { native };
}

/** Renders pieces as OpenAI chat.completion(.chunk) objects. */
class OpenAiSink implements Sink {
  private readonly id = `chatcmpl-${Math.floor(Math.random() * 999)}`;
  private created = Math.floor(Date.now() / 1000);
  private started = false;
  private content = '';
  private reasoning = '';
  private calls: Obj[] = [];

  constructor(
    private readonly ex: Exchange,
    private readonly model: string,
    private readonly stream: boolean,
    private readonly includeUsage: boolean,
  ) {}

  private chunk(choices: Obj[], extra: Obj = {}): Obj {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, system_fingerprint: 'fp_ollama', choices, ...extra };
  }

  private async event(data: unknown): Promise<boolean> {
    if (!this.ex.headersSent) {
      this.created = Math.floor(Date.now() / 1000);
      this.ex.head(200, { 'Content-Type': 'text/event-stream' });
    }
    return this.ex.write(`data: ${typeof data === 'string' ? data : goJson(data)}\n\n`);
  }

  async piece(p: Piece): Promise<boolean> {
    const calls =
      p.kind === 'tools'
        ? p.calls.map((c) => ({ id: c.id, index: c.function.index, type: 'function', function: { name: c.function.name, arguments: JSON.stringify(c.function.arguments) } }))
        : [];
    if (!this.stream) {
      if (p.kind === 'content') this.content += p.text;
      else if (p.kind === 'thinking') this.reasoning += p.text;
      else this.calls.push(...calls);
      return !this.ex.gone;
    }
    if (p.kind === 'tools') this.calls.push(...calls);
    const delta: Obj = this.started ? {} : { role: 'assistant', content: '' };
    if (p.kind === 'content') delta.content = p.text;
    else if (p.kind === 'thinking') delta.reasoning = p.text;
    else delta.tool_calls = calls;
    this.started = true;
    return this.event(this.chunk([{ index: 0, delta, finish_reason: null }]));
  }

  async done(reason: 'stop' | 'length', metrics: Metrics, evalCount: number): Promise<void> {
    const finish = this.calls.length > 0 ? 'tool_calls' : reason;
    const prompt = metrics.prompt_eval_count ?? 0;
    const usage = { prompt_tokens: prompt, completion_tokens: evalCount, total_tokens: prompt + evalCount };
    if (!this.stream) {
      const message: Obj = { role: 'assistant', content: this.content };
      if (this.reasoning) message.reasoning = this.reasoning;
      if (this.calls.length > 0) message.tool_calls = this.calls;
      return this.ex.json(200, {
        id: this.id,
        object: 'chat.completion',
        created: this.created,
        model: this.model,
        system_fingerprint: 'fp_ollama',
        choices: [{ index: 0, message, finish_reason: finish }],
        usage,
      });
    }
    if (!(await this.event(this.chunk([{ index: 0, delta: {}, finish_reason: finish }])))) return;
    if (this.includeUsage && !(await this.event(this.chunk([], { usage })))) return;
    if (await this.event('[DONE]')) this.ex.end();
  }

  async error(message: string): Promise<void> {
    if (!this.ex.headersSent) return this.ex.fail(500, message);
    await this.event(this.chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]));
    this.ex.end();
  }

  async noDone(): Promise<void> {
    if (!this.stream) {
      const message: Obj = { role: 'assistant', content: this.content };
      return this.ex.json(200, { id: this.id, object: 'chat.completion', created: this.created, model: this.model, system_fingerprint: 'fp_ollama', choices: [{ index: 0, message, finish_reason: null }] });
    }
    if (!this.ex.headersSent) this.ex.head(200, { 'Content-Type': 'text/event-stream' });
    this.ex.end();
  }
}

/** POST /v1/chat/completions. */
export async function handleChatCompletions(ex: Exchange, ctx: SimContext, body: Obj): Promise<void> {
  const t = toNativeChat(body);
  if ('error' in t) return ex.fail(400, t.error);
  const job = prepareChat(ex, ctx, t.native);
  if (!job) return;
  const so = body.stream_options as Obj | undefined;
  const sink = new OpenAiSink(ex, job.name, body.stream === true, so?.include_usage === true);
  await runChat(ex, ctx, job, '/v1/chat/completions', body, sink);
}

function modelObject(m: { name: string; modifiedAtMs: number; parsed: { namespace: string } }): Obj {
  return { id: m.name, object: 'model', created: Math.floor(m.modifiedAtMs / 1000), owned_by: m.parsed.namespace };
}

/** GET /v1/models: `data` is null when no model is installed, as in Ollama. */
export function handleModels(ex: Exchange, ctx: SimContext): void {
  const list = ctx.catalog.list().map(modelObject);
  ex.json(200, { object: 'list', data: list.length > 0 ? list : null });
}

/** GET /v1/models/:model. */
export function handleModel(ex: Exchange, ctx: SimContext, name: string): void {
  const m = ctx.catalog.find(name);
  if (!m) return ex.fail(404, `model '${name}' not found`);
  ex.json(200, modelObject(m));
}
