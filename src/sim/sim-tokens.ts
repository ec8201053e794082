/**
 * The simulator's deterministic tokenizer and text: token counts, reply words, token ids and
 * embedding vectors depend only on their input text.
 *
 * Formulas (tests may rely on them):
 * - `countTokens(text)` = number of matches of `/\w+|[^\w\s]/g` (words and single punctuation marks).
 * - chat prompt tokens = Σ over messages of (`countTokens(content)` + 4), plus
 *   `countTokens(JSON.stringify(tools))` when `tools` is a non-empty array.
 * - generate prompt tokens = `countTokens(prompt)` + 4, plus `countTokens(system)` + 4 when `system`
 *   is non-empty, plus `context.length`; with `raw:true` it is `countTokens(prompt)` + `context.length`.
 * - embed prompt tokens = Σ `countTokens(input)`.
 * - A generated reply of N tokens has `countTokens(reply) === N`; each token is one chunk.
 */

const TOKEN_RE = /\w+|[^\w\s]/g;

/** The simulator's tokenizer: count of `/\w+|[^\w\s]/g` matches. `countTokens('Hello, world!') === 4`. */
export function countTokens(text: string): number {
  let n = 0;
  TOKEN_RE.lastIndex = 0;
  while (TOKEN_RE.exec(text) !== null) n++;
  return n;
}

/**
 * Splits text into token pieces that join back to exactly `text`: each piece is one token with
 * the whitespace before it; trailing whitespace sticks to the last piece.
 */
export function splitTokens(text: string): string[] {
  const pieces: string[] = text.match(/\s*(?:\w+|[^\w\s])/g) ?? [];
  const used = pieces.reduce((n, p) => n + p.length, 0);
  if (used < text.length) {
    const tail = text.slice(used);
    if (pieces.length > 0) pieces[pieces.length - 1] += tail;
    else pieces.push(tail);
  }
  return pieces;
}

/** 32-bit FNV-1a hash of a string's UTF-16 code units. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A small deterministic PRNG (mulberry32) seeded with a 32-bit integer; returns [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the a model answer simple quiet river light stone garden morning window story small bright ' +
  'question reason careful friendly green blue ocean mountain idea clear gentle signal token ' +
  'stream server reply message kind useful short long happy calm rain cloud sun moon paper ' +
  'number letter music road bridge city forest field open warm cool fast slow new old good ' +
  'true fine note plan step'
).split(' ');

const THINK_WORDS = 'let me think about this consider the user asks so first then check maybe answer should be brief'.split(' ');

function pickPieces(seed: string, n: number, vocab: string[]): string[] {
  const rand = prng(fnv1a(seed));
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i === n - 1 && n >= 2) {
      out.push('.');
      break;
    }
    const w = vocab[Math.floor(rand() * vocab.length)] ?? 'word';
    out.push(i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : ' ' + w);
  }
  return out;
}

/**
 * Generated reply pieces for a seed text (the last message, or the prompt): `n` tokens, words
 * from a fixed vocabulary picked by a PRNG seeded with FNV-1a(seed), ending with '.' when n ≥ 2.
 */
export function replyPieces(seed: string, n: number): string[] {
  return pickPieces(seed, n, WORDS);
}

/** The generated reply text for a seed (`replyPieces(seed, n).join('')`). */
export function simReplyText(seed: string, n: number): string {
  return replyPieces(seed, n).join('');
}

/** Thinking pieces of a thinking model: `n` tokens seeded with `'think:' + seed`. */
export function thinkingPieces(seed: string, n: number): string[] {
  return pickPieces('think:' + seed, n, THINK_WORDS);
}

/** Deterministic token ids (0…31999) for the tokens of a text, as in generate's `context`. */
export function tokenIds(text: string): number[] {
  return (text.match(TOKEN_RE) ?? []).map((t) => fnv1a(t) % 32000);
}

interface ChatLikeMessage {
  content?: unknown;
}

/** Prompt tokens of a chat request (formula in the module docstring). */
export function chatPromptTokens(messages: ChatLikeMessage[], tools: unknown): number {
  let n = 0;
  for (const m of messages) n += countTokens(typeof m.content === 'string' ? m.content : '') + 4;
  if (Array.isArray(tools) && tools.length > 0) n += countTokens(JSON.stringify(tools));
  return n;
}

/** Prompt tokens of a generate request (formula in the module docstring). */
export function generatePromptTokens(prompt: string, system: string, context: number[], raw: boolean): number {
  if (raw) return countTokens(prompt) + context.length;
  return countTokens(prompt) + 4 + (system ? countTokens(system) + 4 : 0) + context.length;
}

/** Shortest decimal that reads back as the same float32, like Go's json for float32. */
export function float32Number(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const v = Number(f.toPrecision(p));
    if (Math.fround(v) === f) return v;
  }
  return f;
}

/** Raw deterministic vector in [-1, 1) for a text (legacy /api/embeddings, float64, not normalised). */
export function rawVector(text: string, dims: number): number[] {
  const rand = prng(fnv1a('embed:' + text));
  const v: number[] = [];
  for (let i = 0; i < dims; i++) v.push(rand() * 2 - 1);
  return v;
}

/** L2-normalised float32 vector (as /api/embed returns), cut to `dims` when given and smaller. */
export function normalizedVector(text: string, length: number, dims?: number): number[] {
  let v = rawVector(text, length);
  if (dims !== undefined && dims > 0 && dims < v.length) v = v.slice(0, dims);
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => float32Number(x / norm));
}
