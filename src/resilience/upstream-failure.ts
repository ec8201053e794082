import { ParleyError, isParleyError } from '../errors/parley-error.js';
import { OLLAMA_SERVER_BUSY_TEXT, type ErrorCode } from '../errors/codes.js';

/**
 * How Parley judges a failed upstream attempt: may it be retried (before the first byte reached
 * the client), does it count against the upstream's circuit breaker, and how long did the upstream
 * ask us to wait (Retry-After).
 *
 * Retryable: connection refused/reset/closed before a response, connect and first-byte timeouts,
 * upstream 502/503/504 (including Ollama's "server busy" 503), an open breaker (another upstream
 * may serve). Never a 4xx, never a 500 (Ollama's "model failed to load" is the model's failure, and
 * the same request would fail the same way), never a client abort.
 *
 * Counts against the breaker: the upstream's own faults only (connection failures, timeouts,
 * mid-stream breaks, 502/503/504 other than "server busy"); a 404 or a model that cannot load does
 * not open the breaker for the whole upstream.
 */

/** Status codes an upstream may answer that are worth another attempt. */
const RETRYABLE_STATUS = new Set([502, 503, 504]);

const UPSTREAM_FAULT_CODES = new Set<ErrorCode>([
  'PARLEY_ERR_UPSTREAM_UNAVAILABLE',
  'PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT',
  'PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT',
  'PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT',
  'PARLEY_ERR_UPSTREAM_STREAM_BROKEN',
]);

const RETRYABLE_CODES = new Set<ErrorCode>([
  'PARLEY_ERR_UPSTREAM_UNAVAILABLE',
  'PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT',
  'PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT',
  'PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN',
]);

/**
 * An upstream that answered with an error status before any chunk. Carries the exact bytes and
 * headers so that, when no retry is left, the client gets them unchanged (as Ollama sent them).
 * Code PARLEY_ERR_UPSTREAM_REJECTED with the upstream's status.
 */
export class UpstreamStatusFailure extends ParleyError {
  constructor(
    readonly upstreamStatus: number,
    readonly upstreamHeaders: Record<string, string>,
    readonly upstreamBody: Buffer,
    readonly retryAfterMs: number | undefined,
    readonly upstreamUrl: string,
  ) {
    super('PARLEY_ERR_UPSTREAM_REJECTED', errorText(upstreamBody, upstreamStatus), { status: upstreamStatus });
  }

  /** Ollama's own "server busy" 503: the upstream is healthy, only full. */
  get serverBusy(): boolean {
    return this.upstreamStatus === 503 && this.message.startsWith(OLLAMA_SERVER_BUSY_TEXT.slice(0, 30));
  }
}

export function isUpstreamStatusFailure(e: unknown): e is UpstreamStatusFailure {
  return isParleyError(e) && typeof (e as Partial<UpstreamStatusFailure>).upstreamStatus === 'number';
}

/** True when a status answered by an upstream is worth another attempt (502, 503, 504). */
export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUS.has(status);
}

/** True when the failure may be retried, provided nothing of the reply was sent yet. */
export function isRetryableFailure(e: unknown): boolean {
  if (isUpstreamStatusFailure(e)) return isRetryableStatus(e.upstreamStatus);
  return isParleyError(e) && RETRYABLE_CODES.has(e.code);
}

/** True when the failure is the upstream's fault and counts towards opening its breaker. */
export function countsAgainstUpstream(e: unknown): boolean {
  if (isUpstreamStatusFailure(e)) return isRetryableStatus(e.upstreamStatus) && !e.serverBusy;
  return isParleyError(e) && UPSTREAM_FAULT_CODES.has(e.code);
}

/** True when the failure means "no upstream could answer" (degraded mode applies). */
export function isUnavailability(e: unknown): boolean {
  if (isUpstreamStatusFailure(e)) return false;
  return isParleyError(e) && (RETRYABLE_CODES.has(e.code) || e.code === 'PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN');
}

/** The timeout kind of an error (`connect`, `first_byte`, `idle`), or undefined. */
export function timeoutKind(e: unknown): 'connect' | 'first_byte' | 'idle' | undefined {
  if (!isParleyError(e)) return undefined;
  if (e.code === 'PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT') return 'connect';
  if (e.code === 'PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT') return 'first_byte';
  if (e.code === 'PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT') return 'idle';
  return undefined;
}

/**
 * Parses a Retry-After header (delta seconds or an HTTP date) into milliseconds from `now`.
 * Undefined when absent or unreadable.
 */
export function parseRetryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function errorText(body: Buffer, status: number): string {
  const text = body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // plain text (gin's 404) or empty
  }
  return text.trim() || `upstream answered ${status}`;
}
