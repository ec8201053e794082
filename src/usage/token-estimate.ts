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

/**
 * Reads the token counts from the last bytes of an Ollama reply (the final chunk, or the whole
 * body of a `stream:false` reply, ends with `prompt_eval_count` and `eval_count`). Only a bounded
 * tail is kept, so memory stays constant whatever the reply's length.
 */
export class UsageMeter {
  private tail = '';
  /** Bytes seen, for "did anything come back". */
  bytes = 0;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.tail = (this.tail + chunk.toString('utf8')).slice(-4096);
  }

  /** Counts of the last complete reply object, or undefined when the reply carried none. */
  counts(): { promptTokens: number; replyTokens: number; loadDurationNs: number | undefined } | undefined {
    const last = (field: string): number | undefined => {
      const at = this.tail.lastIndexOf(field);
      if (at < 0) return undefined;
      const digits = /^\d+/.exec(this.tail.slice(at + field.length, at + field.length + 24));
      return digits ? Number(digits[0]) : undefined;
    };
    const prompt = last('"prompt_eval_count":');
    const reply = last('"eval_count":');
    if (prompt === undefined && reply === undefined) return undefined;
    return { promptTokens: prompt ?? 0, replyTokens: reply ?? 0, loadDurationNs: last('"load_duration":') };
  }
}
