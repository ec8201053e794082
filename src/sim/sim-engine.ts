import { OLLAMA_SERVER_BUSY_TEXT } from '../errors/codes.js';
import type { SimContext } from './sim-context.js';
import type { CatalogModel } from './sim-models.js';
import type { Piece, ReplyPlan } from './sim-reply.js';
import { type Exchange, nowNs, sleep } from './sim-wire.js';

/**
 * Running a model request: take a slot (or 503), load the model (loadMs), wait ttft, emit the
 * planned tokens with the configured interval, inject faults, and hand every piece to a sink that
 * renders it (native NDJSON, native JSON, OpenAI SSE or JSON).
 */

/** The metrics of a final chunk, integer nanoseconds; zero values are left out (Go omitempty). */
export interface Metrics {
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

/** Renders pieces for one output format. */
export interface Sink {
  /** One token chunk; false when the client is gone. */
  piece(p: Piece): Promise<boolean>;
  /** The final chunk / object. */
  done(reason: 'stop' | 'length', metrics: Metrics, evalCount: number): Promise<void>;
  /** A failure: a real status if nothing was sent yet, else a final error line. */
  error(message: string): Promise<void>;
  /** The stream ends without its done chunk (repetition guard fault). */
  noDone(): Promise<void>;
}

/** Message of the mid-stream failure fault. */
export const MID_STREAM_ERROR = 'simulated mid-stream failure';

/**
 * Takes a slot for `model`, loads it, runs `work`, then releases both. Answers 503 "server busy"
 * when the wait queue is full, or the `statusCode` fault. Nothing is sent if the client leaves.
 */
export async function withModel(
  ex: Exchange,
  ctx: SimContext,
  model: CatalogModel,
  load: { numCtx: number; keepAliveMs: number | undefined },
  work: (loadedNs: bigint) => Promise<void>,
): Promise<void> {
  if (ctx.faults.statusCode) {
    ex.fail(ctx.faults.statusCode, 'simulated failure');
    return;
  }
  const slot = await ctx.slots.acquire(model.name, ex.signal);
  if (slot === 'busy') {
    ex.fail(503, OLLAMA_SERVER_BUSY_TEXT);
    return;
  }
  if (slot === 'aborted') return;
  try {
    if (!(await ctx.loaded.acquire(model, load.numCtx, load.keepAliveMs, ex.signal))) return;
    try {
      await work(nowNs());
    } finally {
      ctx.loaded.release(model);
    }
  } finally {
    ctx.slots.release(model.name);
  }
}

function ns(from: bigint, to: bigint): number {
  return Math.max(1, Number(to - from));
}

/** Cost of a piece in generated tokens. */
export function pieceTokens(p: Piece): number {
  return p.kind === 'tools' ? p.tokens : 1;
}

/**
 * Emits a plan through a sink: ttft (+ firstByteDelayMs fault) of silence, then one piece per
 * `tokenIntervalMs` (a turn of the event loop when 0), honouring faults between pieces. Metrics:
 * total from handler entry; load = handler entry → slot and model ready (includes queueing);
 * prompt eval = ready → first piece; eval = first piece → last piece.
 */
export async function drive(ex: Exchange, ctx: SimContext, plan: ReplyPlan, sink: Sink, loadedNs: bigint, promptEvalCount: number): Promise<void> {
  const s = ctx.settings;
  if (!(await sleep(s.ttftMs + (ctx.faults.firstByteDelayMs ?? 0), ex.signal))) return;
  const firstNs = nowNs();
  let emitted = 0;
  let evalCount = 0;
  const faultHit = (): 'error' | 'reset' | undefined => {
    const f = ctx.faults;
    if (f.errorAfterTokens !== undefined && emitted >= f.errorAfterTokens) return 'error';
    if (f.resetAfterTokens !== undefined && emitted >= f.resetAfterTokens) return 'reset';
    return undefined;
  };
  for (const p of plan.pieces) {
    const hit = faultHit();
    if (hit === 'error') return sink.error(MID_STREAM_ERROR);
    if (hit === 'reset') return ex.destroy();
    if (emitted > 0 && !(await sleep(s.tokenIntervalMs, ex.signal))) return;
    if (!(await sink.piece(p))) return;
    emitted++;
    evalCount += pieceTokens(p);
  }
  const hit = faultHit();
  if (hit === 'error') return sink.error(MID_STREAM_ERROR);
  if (hit === 'reset') return ex.destroy();
  if (ctx.faults.endWithoutDone) return sink.noDone();
  const end = nowNs();
  const metrics: Metrics = {
    total_duration: ns(ex.startNs, end),
    load_duration: ns(ex.startNs, loadedNs),
    prompt_eval_count: promptEvalCount || undefined,
    prompt_eval_duration: ns(loadedNs, firstNs),
    eval_count: evalCount || undefined,
    eval_duration: evalCount ? ns(firstNs, end) : undefined,
  };
  await sink.done(plan.doneReason, metrics, evalCount);
}
