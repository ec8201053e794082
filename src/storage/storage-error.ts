import { ParleyError, isParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';

/**
 * The error a store throws when the database fails (connection refused, closed handle, disk full,
 * constraint broken by a bug). The driver's error is kept as `cause` for the log; the message,
 * which may reach a client, names only the operation, never hosts, paths or SQL.
 * A ParleyError passes through unchanged.
 */
export function storageUnavailable(operation: string, cause: unknown): ParleyError {
  if (isParleyError(cause)) return cause;
  return new ParleyError('PARLEY_ERR_STORAGE_UNAVAILABLE', `database unavailable: ${operation} failed`, { cause });
}

/**
 * Runs one store operation and turns a driver failure into `storageUnavailable(operation, …)`,
 * logging the driver's error (which never reaches a client) when a logger is given.
 * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE (or the ParleyError `fn` threw)
 */
export async function storageOperation<T>(operation: string, fn: () => Promise<T>, logger?: Pick<Logger, 'error'>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const error = storageUnavailable(operation, e);
    if (error !== e) logger?.error({ err: e, operation }, 'database operation failed');
    throw error;
  }
}
