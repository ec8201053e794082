import { createHash } from 'node:crypto';

/** A finished model answer, kept to be served again (chat or generate). */
export interface CachedReply {
  endpoint: 'chat' | 'generate';
  /** Model name as the upstream reported it in the final chunk. */
  model: string;
  /** The joined reply text (chat `message.content`, generate `response`). */
  content: string;
  thinking: string;
  toolCalls: unknown[];
  /** The final `done:true` chunk's other fields (done_reason, counts, durations, context…). */
  final: Record<string, unknown>;
}

interface Entry {
  reply: CachedReply;
  storedAt: number;
  bytes: number;
}

export interface ResponseCacheOptions {
  /** Most answers kept; least recently used go first. 0 disables the cache. */
  maxEntries: number;
  /** Most bytes kept (JSON size of the answers). */
  maxBytes: number;
  /** Clock in ms; default Date.now. */
  now?: () => number;
}

/** Request fields that decide the answer; everything else (stream, keep_alive, …) is left out of the key. */
const KEY_FIELDS = ['messages', 'prompt', 'suffix', 'system', 'template', 'context', 'images', 'format', 'options', 'tools', 'think', 'raw'] as const;

/**
 * Exact-match response cache: same endpoint, model, messages (or prompt), options, format, tools…
 * gives the same key. Bounded by entry count and bytes (LRU); each lookup says how old an answer
 * may be (the degraded-mode TTL and the deterministic-request TTL differ).
 */
export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;
  private readonly now: () => number;

  constructor(private readonly opts: ResponseCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** The answer stored under `key` if younger than `maxAgeMs`; marks it recently used. */
  get(key: string, maxAgeMs: number): CachedReply | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.now() - e.storedAt > maxAgeMs) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.reply;
  }

  /** Stores an answer (replacing an older one), then evicts least recently used past the bounds. */
  set(key: string, reply: CachedReply): void {
    if (this.opts.maxEntries === 0) return;
    const bytes = Buffer.byteLength(JSON.stringify(reply)) + key.length;
    if (bytes > this.opts.maxBytes) return;
    this.delete(key);
    this.entries.set(key, { reply, storedAt: this.now(), bytes });
    this.totalBytes += bytes;
    for (const [k] of this.entries) {
      if (this.entries.size <= this.opts.maxEntries && this.totalBytes <= this.opts.maxBytes) break;
      this.delete(k);
    }
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.totalBytes -= e.bytes;
  }

  /** Drops everything (the memory guardian calls this when memory runs high). */
  clear(): void {
    this.entries.clear();
    this.totalBytes = 0;
  }
}

/**
 * The cache key of a chat or generate request: a SHA-256 of the endpoint, the normalised model
 * name and the answer-deciding fields in canonical JSON (object keys sorted).
 */
export function cacheKey(endpoint: string, normalisedModel: string, body: Record<string, unknown>): string {
  const picked: Record<string, unknown> = { endpoint, model: normalisedModel };
  for (const f of KEY_FIELDS) if (body[f] !== undefined) picked[f] = body[f];
  return createHash('sha256').update(canonicalJson(picked)).digest('hex');
}

/** True when the same request gives the same answer: `options.temperature` 0 or a numeric `options.seed`. */
export function isDeterministic(body: Record<string, unknown>): boolean {
  const o = body.options;
  if (typeof o !== 'object' || o === null) return false;
  const { temperature, seed } = o as { temperature?: unknown; seed?: unknown };
  return temperature === 0 || typeof seed === 'number';
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v).sort();
    return '{' + keys.filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => JSON.stringify(k) + ':' + canonicalJson((v as Record<string, unknown>)[k])).join(',') + '}';
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * Watches the bytes of an upstream chat/generate answer (NDJSON chunks or one JSON object) and
 * builds the CachedReply once a `done:true` chunk with `done_reason` "stop" or "length" went by.
 * Gives up (returns undefined) on an error line, a missing done, or more than `maxBytes` of input.
 */
export class ReplyCapture {
  private parts: Buffer[] = [];
  private size = 0;
  private overflow = false;

  constructor(
    private readonly endpoint: 'chat' | 'generate',
    private readonly maxBytes: number,
  ) {}

  push(chunk: Buffer | string): void {
    if (this.overflow) return;
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.size += b.length;
    if (this.size > this.maxBytes) {
      this.overflow = true;
      this.parts = [];
      return;
    }
    this.parts.push(b);
  }

  /** The finished reply, or undefined when the answer was not a clean, complete one. */
  result(): CachedReply | undefined {
    if (this.overflow) return undefined;
    const reply: CachedReply = { endpoint: this.endpoint, model: '', content: '', thinking: '', toolCalls: [], final: {} };
    let done = false;
    for (const line of Buffer.concat(this.parts).toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      let c: Record<string, unknown>;
      try {
        c = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ('error' in c || 'queue' in c) {
        if ('error' in c) return undefined;
        continue;
      }
      if (typeof c.model === 'string') reply.model = c.model;
      const m = (this.endpoint === 'chat' ? c.message : c) as { content?: unknown; response?: unknown; thinking?: unknown; tool_calls?: unknown } | undefined;
      const text = this.endpoint === 'chat' ? m?.content : m?.response;
      if (typeof text === 'string') reply.content += text;
      if (typeof m?.thinking === 'string') reply.thinking += m.thinking;
      if (Array.isArray(m?.tool_calls)) reply.toolCalls.push(...(m.tool_calls as unknown[]));
      if (c.done === true) {
        done = c.done_reason === 'stop' || c.done_reason === 'length';
        const { message: _m, response: _r, thinking: _t, model: _mo, created_at: _c, session_id: _s, ...rest } = c;
        reply.final = rest;
      }
    }
    return done ? reply : undefined;
  }
}
