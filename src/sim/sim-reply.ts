import { countTokens, fnv1a, replyPieces, splitTokens, thinkingPieces } from './sim-tokens.js';

/**
 * What a model "says" for a request, decided before the first token is written.
 *
 * Order of precedence:
 * 1. A scripted reply (`SimOptions.script`), split into token pieces. A leading
 *    `<think>…</think>` becomes the thinking part (dropped when thinking is off).
 * 2. A tool call, when the request has `tools` and the LAST message is a `user` message whose
 *    content contains the word "weather" (case-insensitive, whole word). The call uses the tool
 *    whose name contains "weather" (else the first tool); arguments fill the tool's required
 *    properties (all properties when none are required): strings get the capitalised words after
 *    " in " in the message (e.g. "weather in New York?" → "New York", default "Paris") or the
 *    first `enum` value, numbers 42, booleans true, arrays [], objects {}. The id is `call_` plus 8
 *    [a-z0-9] characters hashed from the message, so it is deterministic.
 * 3. `format` "json" → `{"answer":"<reply>"}`; a schema object → an object with each property
 *    (strings get the reply text, numbers 42, booleans true, arrays [], objects {}).
 * 4. Otherwise `replyTokens` words from `replyPieces(seed)` (see sim-tokens).
 * Thinking models (thinking on) emit `ceil(replyTokens / 2)` thinking tokens first, except for
 * scripted replies. Then `options.stop` cuts the content before the first stop string
 * (done_reason stop), and `options.num_predict` > 0 caps the total token pieces (thinking,
 * content, and a tool call counted as `countTokens(JSON.stringify({name, arguments}))`) with done_reason length.
 */

/** A tool call as native /api/chat sends it. */
export interface ToolCallOut {
  id: string;
  function: { index: number; name: string; arguments: Record<string, unknown> };
}

/** One chunk's worth of output. */
export type Piece =
  | { kind: 'thinking'; text: string }
  | { kind: 'content'; text: string }
  | { kind: 'tools'; calls: ToolCallOut[]; tokens: number };

export interface ReplyPlan {
  pieces: Piece[];
  doneReason: 'stop' | 'length';
}

export interface ReplyInput {
  /** Text the generated reply is seeded with (last message content, or the prompt). */
  seed: string;
  thinkingOn: boolean;
  scripted?: string;
  tools?: unknown;
  /** Content of the last message when its role is `user`. */
  lastUser?: string;
  format?: unknown;
  numPredict?: number;
  stop?: string[];
  replyTokens: number;
}

/** Decides the reply (see the module docstring). */
export function planReply(inp: ReplyInput): ReplyPlan {
  let thinking: string[] = [];
  let content: string[] = [];
  let call: Piece | undefined;
  if (inp.scripted !== undefined) {
    const m = /^\s*<think>([\s\S]*?)<\/think>\s*/.exec(inp.scripted);
    if (m && inp.thinkingOn) thinking = splitTokens(m[1] ?? '');
    content = splitTokens(m ? inp.scripted.slice(m[0].length) : inp.scripted);
  } else {
    if (inp.thinkingOn) thinking = thinkingPieces(inp.seed, Math.max(1, Math.ceil(inp.replyTokens / 2)));
    call = toolCallFor(inp.tools, inp.lastUser, inp.seed);
    if (!call) content = formatted(inp.format, inp.seed, inp.replyTokens);
  }
  let doneReason: 'stop' | 'length' = 'stop';
  content = applyStop(content, inp.stop ?? []);
  const pieces: Piece[] = [
    ...thinking.map((text): Piece => ({ kind: 'thinking', text })),
    ...(call ? [call] : []),
    ...content.map((text): Piece => ({ kind: 'content', text })),
  ];
  if (inp.numPredict !== undefined && inp.numPredict > 0) {
    let budget = inp.numPredict;
    const kept: Piece[] = [];
    for (const p of pieces) {
      const cost = p.kind === 'tools' ? p.tokens : 1;
      if (cost > budget) {
        doneReason = 'length';
        break;
      }
      budget -= cost;
      kept.push(p);
    }
    return { pieces: kept, doneReason };
  }
  return { pieces, doneReason };
}

function applyStop(content: string[], stops: string[]): string[] {
  const live = stops.filter((s) => s.length > 0);
  if (live.length === 0) return content;
  let text = '';
  const out: string[] = [];
  for (const piece of content) {
    const next = text + piece;
    let cut = -1;
    for (const s of live) {
      const at = next.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      const keep = next.slice(text.length, Math.max(text.length, cut));
      if (keep) out.push(keep);
      return out;
    }
    out.push(piece);
    text = next;
  }
  return out;
}

function formatted(format: unknown, seed: string, n: number): string[] {
  const text = replyPieces(seed, n).join('');
  if (format === 'json') return splitTokens(JSON.stringify({ answer: text }));
  if (format && typeof format === 'object' && !Array.isArray(format)) {
    const props = (format as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
    const obj: Record<string, unknown> = {};
    for (const [k, spec] of Object.entries(props)) obj[k] = sampleValue(spec, text);
    return splitTokens(JSON.stringify(obj));
  }
  return replyPieces(seed, n);
}

function typeOf(spec: unknown): string {
  const t = (spec as { type?: unknown } | undefined)?.type;
  if (Array.isArray(t)) return String(t.find((x) => x !== 'null') ?? 'string');
  return typeof t === 'string' ? t : 'string';
}

function sampleValue(spec: unknown, text: string): unknown {
  const e = (spec as { enum?: unknown[] } | undefined)?.enum;
  if (Array.isArray(e) && e.length > 0) return e[0];
  switch (typeOf(spec)) {
    case 'number':
    case 'integer':
      return 42;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return text;
  }
}

/** The place named after " in " in a message ("weather in New York?" → "New York"), default "Paris". */
export function placeIn(message: string): string {
  const m = /\bin\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)/.exec(message);
  return m?.[1] ?? 'Paris';
}

/** `call_` + 8 characters of [a-z0-9], derived from the text. */
export function toolCallId(text: string): string {
  const a = fnv1a(text).toString(36).padStart(7, '0');
  const b = fnv1a('id:' + text).toString(36);
  return 'call_' + (a + b).slice(-8).padStart(8, '0');
}

interface ToolDef {
  function?: { name?: unknown; parameters?: { properties?: Record<string, unknown>; required?: unknown } };
}

function toolCallFor(tools: unknown, lastUser: string | undefined, seed: string): Piece | undefined {
  if (!Array.isArray(tools) || tools.length === 0 || lastUser === undefined || !/\bweather\b/i.test(lastUser)) return undefined;
  const defs = tools as ToolDef[];
  const tool = defs.find((t) => typeof t?.function?.name === 'string' && /weather/i.test(t.function.name)) ?? defs[0];
  const name = typeof tool?.function?.name === 'string' ? tool.function.name : 'get_weather';
  const props = tool?.function?.parameters?.properties ?? {};
  const req = tool?.function?.parameters?.required;
  const keys = Array.isArray(req) && req.length > 0 ? req.filter((k): k is string => typeof k === 'string') : Object.keys(props);
  const place = placeIn(lastUser);
  const args: Record<string, unknown> = {};
  for (const k of keys) args[k] = sampleValue(props[k], place);
  const tokens = Math.max(1, countTokens(JSON.stringify({ name, arguments: args })));
  return { kind: 'tools', calls: [{ id: toolCallId(seed + '\n' + name), function: { index: 0, name, arguments: args } }], tokens };
}
