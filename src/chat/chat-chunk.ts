/**
 * A mid-reply `/api/chat` chunk exactly as Ollama writes it (its Go struct's field order;
 * Ollama docs/api.md, Generate a chat completion, and reference §2):
 * `{"model":"…","created_at":"…","message":{"role":"assistant","content":"…"},"done":false}`.
 * Matched whole: a line with any other field (thinking, tool_calls, images, error, done:true)
 * does not match. `model` and `created_at` may not hold escapes or control characters, so
 * everything outside the content literal is valid JSON when this matches. Group 1: the content
 * as a JSON string literal.
 */
const PLAIN_CHAT_CHUNK = /^\{"model":"[^"\\\u0000-\u001f]*","created_at":"[^"\\\u0000-\u001f]*","message":\{"role":"assistant","content":("(?:[^"\\\u0000-\u001f]|\\.)*")\},"done":false\}$/;

/**
 * Longest line the pattern is tried on, in characters. A mid-reply token chunk is a few hundred;
 * a longer line (a huge content or tool output) goes to JSON.parse: the regular expression's
 * backtracking stack overflows (RangeError) on lines of some megabytes.
 */
const PLAIN_CHUNK_MAX_CHARS = 4096;

/**
 * Parses one NDJSON line of an upstream `/api/chat` stream (without its `\n`). The common
 * mid-reply chunk is matched and only its content literal parsed (about a third of the CPU of
 * `JSON.parse` on the whole line, which a session turn pays for every token); it then comes back
 * as `{ message: { role: 'assistant', content }, done: false }`, the fields the session relay
 * reads. Any other line is parsed whole.
 * @returns the chunk object, or undefined when the line is not JSON (ollama-js skips such lines)
 */
export function parseChatChunk(line: string): Record<string, unknown> | undefined {
  const plain = line.length <= PLAIN_CHUNK_MAX_CHARS ? PLAIN_CHAT_CHUNK.exec(line) : null;
  if (plain !== null) {
    const literal = plain[1]!;
    // No backslash: the literal's text is the content (the common token).
    if (literal.indexOf('\\') === -1) return { message: { role: 'assistant', content: literal.slice(1, -1) }, done: false };
    const content = parseJson(literal);
    // An escape JSON does not know makes the whole line invalid, as JSON.parse would find.
    return typeof content === 'string' ? { message: { role: 'assistant', content }, done: false } : undefined;
  }
  const chunk = parseJson(line);
  return typeof chunk === 'object' && chunk !== null && !Array.isArray(chunk) ? (chunk as Record<string, unknown>) : undefined;
}

/** JSON.parse, with undefined for text that is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
}
