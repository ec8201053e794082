/**
 * Token estimates made before a request runs (budgets, rate limits, fair-queue cost). They are
 * deliberately simple and a little generous: 1 token per 4 characters (rounded up) of every text
 * the model reads, plus 4 tokens per chat message for the template. The real counts
 * (`prompt_eval_count`, `eval_count`) replace them when the reply ends.
 */
export function estimatePromptTokens(endpoint: string, body: Record<string, unknown>): number {
  const chars = (v: unknown): number => (typeof v === 'string' ? v.length : 0);
  let n = 0;
  if (endpoint === 'chat') {
    const messages = Array.isArray(body.messages) ? body.messages : [];
    for (const m of messages) n += Math.ceil(chars((m as { content?: unknown } | null)?.content) / 4) + 4;
  } else if (endpoint === 'generate') {
    n = Math.ceil((chars(body.prompt) + chars(body.system) + chars(body.suffix)) / 4);
  } else {
    const input = endpoint === 'embeddings' ? body.prompt : body.input;
    const texts = Array.isArray(input) ? input : [input];
    for (const t of texts) n += Math.ceil(chars(t) / 4);
  }
  return Math.max(1, n);
}

/** Reply tokens reserved: `options.num_predict` when a positive integer, else `fallback`; 0 for embeddings. */
export function replyReservation(endpoint: string, body: Record<string, unknown>, fallback: number): number {
  if (endpoint === 'embed' || endpoint === 'embeddings') return 0;
  const np = (body.options as { num_predict?: unknown } | undefined)?.num_predict;
  return typeof np === 'number' && Number.isInteger(np) && np > 0 ? np : fallback;
}

/** Bytes of a reply's end that UsageMeter keeps: Ollama's final chunk (about 350 bytes) fits several times over. */
const TAIL_BYTES = 2048;

/**
 * Reads the token counts from the last bytes of an Ollama reply (the final chunk, or the whole
 * body of a `stream:false` reply, ends with `prompt_eval_count` and `eval_count`). Only the last
 * line is kept, at most its last TAIL_BYTES, as received: nothing is decoded or copied per chunk,
 * and a token stream, whose every read ends a line, holds one chunk at a time.
 */
export class UsageMeter {
  private chunks: Buffer[] = [];
  /** Bytes held in `chunks`. */
  private held = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    // A new line starts after a chunk that ended one: the counts are in the last line only.
    const last = this.chunks[this.chunks.length - 1];
    if (last !== undefined && last[last.length - 1] === 10) {
      this.chunks = [];
      this.held = 0;
    }
    this.chunks.push(chunk);
    this.held += chunk.length;
    // A long last line (a stream:false body read in pieces): drop what the rest covers the tail without.
    while (this.chunks.length > 1 && this.held - this.chunks[0]!.length >= TAIL_BYTES) this.held -= this.chunks.shift()!.length;
  }

  /** Counts of the last complete reply object, or undefined when the reply carried none. */
  counts(): { promptTokens: number; replyTokens: number; loadDurationNs: number | undefined } | undefined {
    // latin1: one character per byte, so a multi-byte character cut at the tail's start cannot
    // garble anything; the field names and digits searched for are ASCII.
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.held);
    const tail = all.subarray(Math.max(0, all.length - TAIL_BYTES)).toString('latin1');
    const last = (field: string): number | undefined => {
      const at = tail.lastIndexOf(field);
      if (at < 0) return undefined;
      const digits = /^\d+/.exec(tail.slice(at + field.length, at + field.length + 24));
      return digits ? Number(digits[0]) : undefined;
    };
    const prompt = last('"prompt_eval_count":');
    const reply = last('"eval_count":');
    if (prompt === undefined && reply === undefined) return undefined;
    return { promptTokens: prompt ?? 0, replyTokens: reply ?? 0, loadDurationNs: last('"load_duration":') };
  }
}
