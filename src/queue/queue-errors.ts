import { OLLAMA_SERVER_BUSY_TEXT } from '../errors/codes.js';
import { ParleyError } from '../errors/parley-error.js';

/** The errors the admission queue answers with (codes in src/errors/codes.ts). Internal to src/queue. */
export const queueErrors = {
  cleared: () => new ParleyError('PARLEY_ERR_QUEUE_CLEARED', 'request removed from the queue by an operator; please try again', { headers: { 'Retry-After': '5' } }),
  cancelled: () => new ParleyError('PARLEY_ERR_QUEUE_CANCELLED', 'request canceled'),
  draining: () => new ParleyError('PARLEY_ERR_QUEUE_DRAINING', 'the queue is being drained by an operator; please try again later', { headers: { 'Retry-After': '30' } }),
  full: () => new ParleyError('PARLEY_ERR_QUEUE_FULL', OLLAMA_SERVER_BUSY_TEXT),
  tooManyQueued: (maxQueued: number) =>
    new ParleyError('PARLEY_ERR_USAGE_TOO_MANY_QUEUED', `too many queued requests: this key may have ${maxQueued} waiting; please retry when some have finished`, { headers: { 'Retry-After': '5' } }),
  waitTimeout: (maxWaitMs: number) => new ParleyError('PARLEY_ERR_QUEUE_WAIT_TIMEOUT', `queue wait exceeded ${maxWaitMs} ms; please try again`),
  shuttingDown: () => new ParleyError('PARLEY_ERR_SHUTTING_DOWN', 'server is shutting down, please try again later'),
};

/** setTimeout fires at once for delays above this (ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** @throws RangeError naming `name` when `value` is not an integer from `min` to `max` */
export function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  return value;
}
