import { normalizeModelName } from '../upstream/model-name.js';

type CountTokens = typeof import('gpt-tokenizer').countTokens;

/**
 * gpt-tokenizer is loaded on first use, not at start: its o200k tables cost ~60 MB of RSS
 * (22 MB heap), which a Parley that never counts a token (no session turns, or context
 * management off) should not pay. Every async path that counts awaits `loadTokenizer()` first.
 */
let countTokensFn: CountTokens | undefined;
let loadingTokenizer: Promise<void> | undefined;

/** Loads gpt-tokenizer once (later calls return the same promise). Await before any raw count. */
export function loadTokenizer(): Promise<void> {
  return (loadingTokenizer ??= import('gpt-tokenizer').then((m) => {
    countTokensFn = m.countTokens;
  }));
}

/** True once `loadTokenizer()` resolved (counting is synchronous from then on). */
export function tokenizerLoaded(): boolean {
  return countTokensFn !== undefined;
}

function countTokens(text: string, opts: typeof NO_SPECIAL): number {
  if (countTokensFn === undefined) throw new Error('gpt-tokenizer is not loaded yet: await loadTokenizer() before counting');
  return countTokensFn(text, opts);
}

/** The parts of an Ollama chat message that cost prompt tokens (reference §1.2). */
export interface CountableMessage {
  role: string;
  content: string;
  tool_calls?: unknown[] | undefined;
  tool_name?: string | undefined;
}

/** Learned per-model figures: `tokens ≈ ratio × rawTokens + overheadTokens` per message. */
export interface Calibration {
  /** Model tokens per tokenizer-library token. 1 before any observation. */
  ratio: number;
  /** Template tokens per message (role header, end-of-turn). `defaultOverheadTokens` before any observation. */
  overheadTokens: number;
  /** Observations the figures were learned from (weighted, decaying). */
  observations: number;
}

const NO_SPECIAL = { disallowedSpecial: new Set<string>() };
/** Older observations fade with this factor per new one, so a model's figures follow drift. */
const DECAY = 0.999;
const RATIO_BOUNDS = [0.2, 5] as const;
/** Weight of the prior that the per-message overhead is the default, in messages. */
const PRIOR_MESSAGES = 50;
const OVERHEAD_BOUNDS = [0, 64] as const;
/** Weighted observations after which replies are sampled (wantsReplySample). */
const REPLY_SAMPLING_AFTER = 200;
/** Once sampling, one reply in this many is observed. */
const REPLY_SAMPLE_EVERY = 8;

/**
 * Raw token count of a message's text with gpt-tokenizer (o200k_base BPE): `content`, plus the
 * JSON of `tool_calls` and the `tool_name` when present. Images and `thinking` are not counted
 * (Ollama's chat templates leave earlier turns' thinking out; image tokens depend on the model).
 * Requires `loadTokenizer()` to have resolved.
 */
export function rawMessageTokens(m: CountableMessage): number {
  let n = countTokens(m.content ?? '', NO_SPECIAL);
  if (m.tool_calls && m.tool_calls.length > 0) n += countTokens(JSON.stringify(m.tool_calls), NO_SPECIAL);
  if (m.tool_name) n += countTokens(m.tool_name, NO_SPECIAL);
  return n;
}

/** Raw token count of plain text (o200k_base). */
export function rawTextTokens(text: string): number {
  return countTokens(text, NO_SPECIAL);
}

/** Weighted least-squares sums for `y = ratio·x + overhead·k` (x raw tokens, k messages, y exact tokens). */
class Fit {
  n = 0;
  /** Replies seen since the last sampled one (wantsReplySample). */
  replies = 0;
  sxx = 0;
  sxk = 0;
  skk = 0;
  sxy = 0;
  sky = 0;

  add(x: number, k: number, y: number): void {
    this.n = this.n * DECAY + 1;
    this.sxx = this.sxx * DECAY + x * x;
    this.sxk = this.sxk * DECAY + x * k;
    this.skk = this.skk * DECAY + k * k;
    this.sxy = this.sxy * DECAY + x * y;
    this.sky = this.sky * DECAY + k * y;
  }

  /**
   * Ridge fit: a prior worth PRIOR_MESSAGES messages holds the overhead near its default, because
   * prompts and replies differ in kind and a free overhead would soak up that difference.
   */
  solve(defaultOverhead: number): Calibration {
    const skk = this.skk + PRIOR_MESSAGES;
    const sky = this.sky + PRIOR_MESSAGES * defaultOverhead;
    const det = this.sxx * skk - this.sxk * this.sxk;
    let ratio: number;
    let overhead: number;
    if (this.sxx > 0 && det > 1e-9 * this.sxx * skk) {
      ratio = (this.sxy * skk - sky * this.sxk) / det;
      overhead = (this.sxx * sky - this.sxk * this.sxy) / det;
    } else if (this.sxx > 0) {
      // Not enough variety to separate the two: keep the default overhead, learn the ratio.
      overhead = defaultOverhead;
      ratio = (this.sxy - overhead * this.sxk) / this.sxx;
    } else {
      return { ratio: 1, overheadTokens: defaultOverhead, observations: 0 };
    }
    return { ratio: clamp(ratio, RATIO_BOUNDS), overheadTokens: clamp(overhead, OVERHEAD_BOUNDS), observations: this.n };
  }
}

/**
 * Token estimates for chat messages, calibrated per model against the upstream's exact counts.
 *
 * Before a model has been observed a message costs `rawMessageTokens(m) + defaultOverheadTokens`.
 * Each exact figure the upstream reports (a turn's `prompt_eval_count` less the known tokens of
 * the rest of the prompt, or a reply's `eval_count`) is one observation `(raw tokens, messages,
 * exact tokens)`; a least-squares fit of `exact = ratio × raw + overhead × messages` gives the
 * model's `ratio` and per-message `overhead`. Calibration lives in memory (per process); exact
 * counts stored on messages survive restarts. Models are keyed by normalised name.
 */
export class TokenEstimator {
  private readonly fits = new Map<string, Fit>();
  private readonly defaultOverheadTokens: number;

  /** @param opts.defaultOverheadTokens template tokens per message before calibration; default 4. */
  constructor(opts: { defaultOverheadTokens?: number } = {}) {
    this.defaultOverheadTokens = opts.defaultOverheadTokens ?? 4;
  }

  /** The model's current figures. */
  calibration(model: string): Calibration {
    return this.fits.get(normalizeModelName(model))?.solve(this.defaultOverheadTokens) ?? { ratio: 1, overheadTokens: this.defaultOverheadTokens, observations: 0 };
  }

  /** Estimated prompt tokens of one message for `model` (integer ≥ 1). */
  estimate(model: string, m: CountableMessage): number {
    return this.fromRaw(model, rawMessageTokens(m), 1);
  }

  /** Estimated tokens of `messages` messages whose raw count is `raw` (integer ≥ 0). */
  fromRaw(model: string, raw: number, messages: number): number {
    const c = this.calibration(model);
    return Math.max(messages, Math.round(c.ratio * raw + c.overheadTokens * messages));
  }

  /** Tokens of generated text (`eval_count`-like: no per-message overhead). */
  estimateText(model: string, text: string): number {
    return Math.round(this.calibration(model).ratio * rawTextTokens(text));
  }

  /**
   * Whether the next reply of `model` should be observed: every one until the model's figures
   * rest on REPLY_SAMPLING_AFTER observations, then one in REPLY_SAMPLE_EVERY (the BPE count of a
   * long reply costs more than the rest of the turn's accounting; a sample fits the same line).
   */
  wantsReplySample(model: string): boolean {
    const key = normalizeModelName(model);
    const fit = this.fits.get(key);
    if (fit === undefined || fit.n < REPLY_SAMPLING_AFTER) return true;
    fit.replies = (fit.replies + 1) % REPLY_SAMPLE_EVERY;
    return fit.replies === 0;
  }

  /**
   * Learns from one exact figure: `exactTokens` (from the upstream) for text of `rawTokens`
   * (rawMessageTokens / rawTextTokens) spread over `messages` messages (0 for generated text).
   * Ignored when either count is not positive.
   */
  observe(model: string, obs: { rawTokens: number; messages: number; exactTokens: number }): void {
    if (!(obs.exactTokens > 0) || !(obs.rawTokens > 0)) return;
    const key = normalizeModelName(model);
    let fit = this.fits.get(key);
    if (!fit) this.fits.set(key, (fit = new Fit()));
    fit.add(obs.rawTokens, obs.messages, obs.exactTokens);
  }
}

function clamp(v: number, [lo, hi]: readonly [number, number]): number {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : lo;
}
