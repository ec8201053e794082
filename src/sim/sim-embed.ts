import type { SimContext } from './sim-context.js';
import { withModel } from './sim-engine.js';
import { parseKeepAlive } from './sim-fields.js';
import { numCtxFor } from './sim-generate.js';
import { countTokens, normalizedVector, rawVector } from './sim-tokens.js';
import { type Exchange, nowNs, sleep } from './sim-wire.js';

/**
 * POST /api/embed and POST /api/embeddings (reference §1.3). Any installed model can embed.
 * Vectors are deterministic per input text: `embeddingLength` values (default 8) from a PRNG
 * seeded with FNV-1a('embed:' + text); /api/embed L2-normalises them (float32), /api/embeddings
 * returns them raw (float64). Embeds take a slot like generation and last `ttftMs`.
 */

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function opts(body: Record<string, unknown>): Record<string, unknown> {
  const o = body.options;
  return o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : {};
}

/** POST /api/embed: `{model, embeddings, total_duration, load_duration, prompt_eval_count}`. */
export async function handleEmbed(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): Promise<void> {
  let keepAliveMs: number | undefined;
  try {
    keepAliveMs = parseKeepAlive(body.keep_alive);
  } catch (e) {
    return ex.fail(400, errText(e));
  }
  const inputs: string[] = [];
  const input = body.input;
  if (typeof input === 'string') {
    if (input.length > 0) inputs.push(input);
  } else if (Array.isArray(input)) {
    for (const v of input) {
      if (typeof v !== 'string') return ex.fail(400, 'invalid input type');
      inputs.push(v);
    }
  } else if (input !== undefined && input !== null) {
    return ex.fail(400, 'invalid input type');
  }
  const name = typeof body.model === 'string' ? body.model : '';
  if (!name) return ex.fail(400, 'model is required');
  const model = ctx.catalog.find(name);
  if (!model) return ex.fail(404, `model ${JSON.stringify(name)} not found, try pulling it first`);
  const numCtx = numCtxFor(model, opts(body));
  const counts = inputs.map(countTokens);
  const promptTokens = counts.reduce((a, b) => a + b, 0);
  if (ex.record) ex.record.promptTokens = promptTokens;
  if (body.truncate === false && counts.some((c) => c > numCtx)) return ex.fail(400, 'the input length exceeds the context length');
  if (inputs.length === 0) {
    if (ctx.faults.statusCode) return ex.fail(ctx.faults.statusCode, 'simulated failure');
    if (!(await ctx.loaded.acquire(model, numCtx, keepAliveMs, ex.signal))) return;
    ctx.loaded.release(model);
    return ex.json(200, { model: name, embeddings: [] });
  }
  const dims = typeof body.dimensions === 'number' ? body.dimensions : undefined;
  await withModel(ex, ctx, model, { numCtx, keepAliveMs }, async (loadedNs) => {
    if (!(await sleep(ctx.settings.ttftMs + (ctx.faults.firstByteDelayMs ?? 0), ex.signal))) return;
    const end = nowNs();
    ex.json(200, {
      model: name,
      embeddings: inputs.map((t) => normalizedVector(t, model.embeddingLength, dims)),
      total_duration: Math.max(1, Number(end - ex.startNs)),
      load_duration: Math.max(1, Number(loadedNs - ex.startNs)),
      prompt_eval_count: counts.reduce((a, c) => a + Math.min(c, numCtx), 0) || undefined,
    });
  });
}

/** POST /api/embeddings (legacy): `{embedding: number[]}`, not normalised; empty prompt → `[]`. */
export async function handleEmbeddings(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): Promise<void> {
  let keepAliveMs: number | undefined;
  try {
    keepAliveMs = parseKeepAlive(body.keep_alive);
  } catch (e) {
    return ex.fail(400, errText(e));
  }
  const name = typeof body.model === 'string' ? body.model : '';
  if (!name) return ex.fail(400, 'model is required');
  const model = ctx.catalog.find(name);
  if (!model) return ex.fail(404, `model ${JSON.stringify(name)} not found, try pulling it first`);
  const prompt = typeof body.prompt === 'string' ? body.prompt : '';
  const numCtx = numCtxFor(model, opts(body));
  if (ex.record) ex.record.promptTokens = countTokens(prompt);
  if (!prompt) {
    if (ctx.faults.statusCode) return ex.fail(ctx.faults.statusCode, 'simulated failure');
    if (!(await ctx.loaded.acquire(model, numCtx, keepAliveMs, ex.signal))) return;
    ctx.loaded.release(model);
    return ex.json(200, { embedding: [] });
  }
  await withModel(ex, ctx, model, { numCtx, keepAliveMs }, async () => {
    if (!(await sleep(ctx.settings.ttftMs + (ctx.faults.firstByteDelayMs ?? 0), ex.signal))) return;
    ex.json(200, { embedding: rawVector(prompt, model.embeddingLength) });
  });
}
