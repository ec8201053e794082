import type { SimContext } from './sim-context.js';
import { drive, withModel } from './sim-engine.js';
import { checkBase64, checkOptions, parseKeepAlive, parseThink } from './sim-fields.js';
import { type CatalogModel, fullName, parseModelName } from './sim-models.js';
import { planReply } from './sim-reply.js';
import { ChatSink, GenerateSink } from './sim-sinks.js';
import { chatPromptTokens, generatePromptTokens, tokenIds } from './sim-tokens.js';
import { type Exchange, createdAt, sleep } from './sim-wire.js';
import type { Sink } from './sim-engine.js';

/**
 * POST /api/chat and POST /api/generate (reference §1.1, §1.2, §2, §4.4): validation with
 * Ollama's error texts and order, load/unload requests, then generation through the slot queue.
 * Prompt tokens are counted by the formulas in sim-tokens.ts and truncated silently to
 * `options.num_ctx ?? contextLength` (capped at contextLength); `truncate:false` with a longer
 * prompt answers 400 `the input length exceeds the context length`.
 */

/** A validated chat request, ready to run (also used by /v1/chat/completions). */
export interface ChatJob {
  /** Model name as the client sent it (echoed in responses). */
  name: string;
  model: CatalogModel;
  messages: Record<string, unknown>[];
  tools: unknown;
  thinkingOn: boolean;
  keepAliveMs: number | undefined;
  numCtx: number;
  promptTokens: number;
  options: Record<string, unknown>;
  format: unknown;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Effective num_ctx: `options.num_ctx` when positive, capped at the model's context length. */
export function numCtxFor(model: CatalogModel, options: Record<string, unknown>): number {
  const n = options.num_ctx;
  return typeof n === 'number' && n > 0 ? Math.min(Math.trunc(n), model.contextLength) : model.contextLength;
}

/** Checks shared by chat and generate after the model is known; the 400 text or undefined. */
function commonChecks(body: Record<string, unknown>): string | undefined {
  const f = body.format;
  if (f !== undefined && f !== null && f !== '' && f !== 'json' && (typeof f !== 'object' || Array.isArray(f))) {
    return `invalid format: ${JSON.stringify(JSON.stringify(f))}; expected "json" or a valid JSON Schema object`;
  }
  const tl = body.top_logprobs;
  if (typeof tl === 'number' && (tl < 0 || tl > 20)) return 'top_logprobs must be between 0 and 20';
  return checkOptions(body.options);
}

function optionsOf(body: Record<string, unknown>): Record<string, unknown> {
  const o = body.options;
  return o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : {};
}

/** Validates a chat body, answering the error itself; undefined when it did. */
export function prepareChat(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): ChatJob | undefined {
  let keepAliveMs: number | undefined;
  let think: boolean | string | undefined;
  try {
    keepAliveMs = parseKeepAlive(body.keep_alive);
    think = parseThink(body.think);
  } catch (e) {
    return void ex.fail(400, errText(e));
  }
  const messages = (Array.isArray(body.messages) ? body.messages : []).filter((m): m is Record<string, unknown> => !!m && typeof m === 'object');
  const imgErr = messages.map((m) => checkBase64(m.images)).find((x) => x !== undefined);
  if (imgErr) return void ex.fail(400, imgErr);
  const name = typeof body.model === 'string' ? body.model : '';
  if (!name || !parseModelName(name)) return void ex.fail(400, 'model is required');
  const model = ctx.catalog.find(name);
  if (!model) return void ex.fail(404, `model '${name}' not found`);
  const caps = model.capabilities;
  if (!caps.includes('completion')) return void ex.fail(400, `${JSON.stringify(name)} does not support chat`);
  const tools = body.tools;
  if (Array.isArray(tools) && tools.length > 0 && !caps.includes('tools')) return void ex.fail(400, `${fullName(model.parsed)} does not support tools`);
  if ((think === true || typeof think === 'string') && !caps.includes('thinking')) return void ex.fail(400, `${JSON.stringify(name)} does not support thinking`);
  const bad = commonChecks(body);
  if (bad) return void ex.fail(400, bad);
  const options = optionsOf(body);
  const numCtx = numCtxFor(model, options);
  const promptTokens = chatPromptTokens(messages, tools);
  if (ex.record) ex.record.promptTokens = promptTokens;
  if (body.truncate === false && promptTokens > numCtx) return void ex.fail(400, 'the input length exceeds the context length');
  return { name, model, messages, tools, thinkingOn: caps.includes('thinking') && think !== false, keepAliveMs, numCtx, promptTokens, options, format: body.format };
}

/** A load (or unload with keep_alive 0) request: one JSON object, even when streaming. */
async function loadOnly(ex: Exchange, ctx: SimContext, model: CatalogModel, numCtx: number, keepAliveMs: number | undefined, render: (reason: string) => object): Promise<void> {
  if (ctx.faults.statusCode) return ex.fail(ctx.faults.statusCode, 'simulated failure');
  if (keepAliveMs === 0) {
    ctx.loaded.expire(model.name);
    return ex.json(200, render('unload'));
  }
  if (!(await ctx.loaded.acquire(model, numCtx, keepAliveMs, ex.signal))) return;
  ctx.loaded.release(model);
  if (!(await sleep(ctx.faults.firstByteDelayMs ?? 0, ex.signal))) return;
  ex.json(200, render('load'));
}

function stopsOf(options: Record<string, unknown>): string[] {
  return Array.isArray(options.stop) ? options.stop.filter((s): s is string => typeof s === 'string') : [];
}

/** Runs a validated chat job through the queue and a sink. */
export async function runChat(ex: Exchange, ctx: SimContext, job: ChatJob, path: string, body: Record<string, unknown>, sink: Sink): Promise<void> {
  await withModel(ex, ctx, job.model, job, async (loadedNs) => {
    const last = job.messages[job.messages.length - 1];
    const lastContent = typeof last?.content === 'string' ? last.content : '';
    const lastRole = typeof last?.role === 'string' ? last.role.toLowerCase() : '';
    const plan = planReply({
      seed: lastContent,
      thinkingOn: job.thinkingOn,
      scripted: ctx.nextScript(path, body),
      tools: job.tools,
      lastUser: lastRole === 'user' ? lastContent : undefined,
      format: job.format,
      numPredict: typeof job.options.num_predict === 'number' ? job.options.num_predict : undefined,
      stop: stopsOf(job.options),
      replyTokens: ctx.settings.replyTokens,
    });
    await drive(ex, ctx, plan, sink, loadedNs, Math.min(job.promptTokens, job.numCtx));
  });
}

/** POST /api/chat. */
export async function handleChat(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): Promise<void> {
  const job = prepareChat(ex, ctx, body);
  if (!job) return;
  if (job.messages.length === 0) {
    return loadOnly(ex, ctx, job.model, job.numCtx, job.keepAliveMs, (reason) => ({
      model: job.name,
      created_at: createdAt(),
      message: { role: 'assistant', content: '' },
      done: true,
      done_reason: reason,
    }));
  }
  await runChat(ex, ctx, job, '/api/chat', body, new ChatSink(ex, job.name, body.stream !== false));
}

/** POST /api/generate. */
export async function handleGenerate(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): Promise<void> {
  let keepAliveMs: number | undefined;
  let think: boolean | string | undefined;
  try {
    keepAliveMs = parseKeepAlive(body.keep_alive);
    think = parseThink(body.think);
  } catch (e) {
    return ex.fail(400, errText(e));
  }
  const imgErr = checkBase64(body.images);
  if (imgErr) return ex.fail(400, imgErr);
  const name = typeof body.model === 'string' ? body.model : '';
  const model = parseModelName(name) ? ctx.catalog.find(name) : undefined;
  if (!model) return ex.fail(404, `model '${name}' not found`);
  const str = (k: string): string => (typeof body[k] === 'string' ? (body[k] as string) : '');
  const context = Array.isArray(body.context) ? body.context.filter((x): x is number => typeof x === 'number') : [];
  const raw = body.raw === true;
  if (raw && (str('template') || str('system') || context.length > 0)) return ex.fail(400, 'raw mode does not support template, system, or context');
  const caps = model.capabilities;
  if (!caps.includes('completion')) return ex.fail(400, `${JSON.stringify(name)} does not support generate`);
  if (str('suffix') && !caps.includes('insert')) return ex.fail(400, `${fullName(model.parsed)} does not support insert`);
  if ((think === true || typeof think === 'string') && !caps.includes('thinking')) return ex.fail(400, `${JSON.stringify(name)} does not support thinking`);
  const bad = commonChecks(body);
  if (bad) return ex.fail(400, bad);
  const options = optionsOf(body);
  const numCtx = numCtxFor(model, options);
  const prompt = str('prompt');
  const system = str('system') || (model.system ?? '');
  const promptTokens = prompt ? generatePromptTokens(prompt, raw ? '' : str('system'), context, raw) : 0;
  if (ex.record) ex.record.promptTokens = promptTokens;
  if (!prompt) {
    return loadOnly(ex, ctx, model, numCtx, keepAliveMs, (reason) => ({ model: name, created_at: createdAt(), response: '', done: true, done_reason: reason }));
  }
  if (body.truncate === false && promptTokens > numCtx) return ex.fail(400, 'the input length exceeds the context length');
  const prefix = raw ? undefined : [...context, ...tokenIds(system + ' ' + prompt)];
  const sink = new GenerateSink(ex, name, body.stream !== false, prefix);
  await withModel(ex, ctx, model, { numCtx, keepAliveMs }, async (loadedNs) => {
    const plan = planReply({
      seed: prompt,
      thinkingOn: caps.includes('thinking') && think !== false,
      scripted: ctx.nextScript('/api/generate', body),
      format: body.format,
      numPredict: typeof options.num_predict === 'number' ? options.num_predict : undefined,
      stop: stopsOf(options),
      replyTokens: ctx.settings.replyTokens,
    });
    await drive(ex, ctx, plan, sink, loadedNs, Math.min(promptTokens, numCtx));
  });
}
