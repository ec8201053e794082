import { ERROR_CODES, type ErrorCode } from './codes.js';

/**
 * The error every Parley module throws for an expected failure. Match on `code`
 * (`isParleyError(e) && e.code === 'PARLEY_ERR_QUEUE_FULL'`), not on `instanceof` across packages.
 *
 * `message` is the text sent to the client in `{"error":"…"}`: it is the Ollama text where Ollama
 * has one, otherwise a plain sentence that names the field or limit.
 */
export class ParleyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  /** Extra response headers, e.g. `Retry-After`. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; status?: number; headers?: Record<string, string> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ParleyError';
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.headers = options.headers ?? {};
  }
}

export function isParleyError(e: unknown): e is ParleyError {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'ParleyError' && typeof (e as { code?: unknown }).code === 'string';
}

/** Wraps anything thrown into a ParleyError (unknown errors become PARLEY_ERR_INTERNAL). */
export function toParleyError(e: unknown): ParleyError {
  if (isParleyError(e)) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new ParleyError('PARLEY_ERR_INTERNAL', message || 'internal error', { cause: e });
}
