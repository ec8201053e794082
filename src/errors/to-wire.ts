import { ERROR_CODES } from './codes.js';
import { toParleyError } from './parley-error.js';

/**
 * The one place errors are turned into bytes for a client.
 * Shapes: Ollama native (reference §3), OpenAI (reference §5.3), and the final NDJSON line
 * Ollama writes when a stream fails after its first chunk.
 */
export interface WireError {
  status: number;
  headers: Record<string, string>;
  body: string;
  code: string;
}

/** Ollama's error shape `{"error":"…"}` with the error's status and extra headers. */
export function toOllamaWire(e: unknown): WireError {
  const err = toParleyError(e);
  return { status: err.status, headers: { ...err.headers }, body: JSON.stringify({ error: err.message }), code: err.code };
}

/** The final NDJSON line of a stream that failed after its first chunk: `{"error":"…"}\n`. */
export function toOllamaStreamLine(e: unknown): string {
  return JSON.stringify({ error: toParleyError(e).message }) + '\n';
}

/** OpenAI's error shape (reference §5.3): type by status, `param` and `code` null. */
export function toOpenAiWire(e: unknown): WireError {
  const err = toParleyError(e);
  const type = err.status === 400 ? 'invalid_request_error' : err.status === 404 ? 'not_found_error' : 'api_error';
  return {
    status: err.status,
    headers: { ...err.headers },
    body: JSON.stringify({ error: { message: err.message, type, param: null, code: null } }),
    code: err.code,
  };
}

export function statusOf(code: keyof typeof ERROR_CODES): number {
  return ERROR_CODES[code].status;
}
