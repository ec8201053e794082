import { ParleyError, isParleyError } from '../errors/parley-error.js';

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
