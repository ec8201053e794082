import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { isParleyError } from '../errors/parley-error.js';
import type { CompleteTurnInput, SessionStore } from '../conversations/session-store.js';

export interface StorageRetryOptions {
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number;
  /** First delay, in ms (doubling). Default 50. */
  baseDelayMs?: number;
  /** Called before each retry (metrics, logs). */
  onRetry?: (operation: string, error: unknown) => void;
  /** Called when an operation failed for good (metrics). */
  onFailure?: (operation: string, error: unknown) => void;
}

const isStorageFailure = (e: unknown) => isParleyError(e) && e.code === 'PARLEY_ERR_STORAGE_UNAVAILABLE';

/**
 * Retries of database writes that are safe to repeat, over cockatiel: an idempotent write
 * (an UPDATE of one row by id to a final value) is retried a few times with backoff when the
 * database fails (disk full for a moment, a dropped connection). Non-idempotent writes (inserts)
 * are not retried: a failed one is answered to the client as PARLEY_ERR_STORAGE_UNAVAILABLE.
 */
export function retryStorage<T>(operation: string, fn: () => Promise<T>, opts: StorageRetryOptions = {}): Promise<T> {
  const policy = retry(handleWhen(isStorageFailure), {
    maxAttempts: opts.maxRetries ?? 3,
    backoff: new ExponentialBackoff({ initialDelay: opts.baseDelayMs ?? 50, maxDelay: 1_000 }),
  });
  const sub = policy.onRetry((r) => {
    if ('error' in r) opts.onRetry?.(operation, r.error);
  });
  return policy.execute(() => fn()).then(
    (v) => {
      sub.dispose();
      return v;
    },
    (e: unknown) => {
      sub.dispose();
      opts.onFailure?.(operation, e);
      throw e;
    },
  );
}

/**
 * A SessionStore whose idempotent writes (`completeTurn`, `savePartial`: one UPDATE by id) are
 * retried on storage failures; everything else passes through, failures counted by `onFailure`.
 */
export function withStorageRetry(store: SessionStore, opts: StorageRetryOptions = {}): SessionStore {
  const counted = <T>(op: string, p: Promise<T>): Promise<T> =>
    p.catch((e: unknown) => {
      opts.onFailure?.(op, e);
      throw e;
    });
  return {
    getSession: (id) => counted('getSession', store.getSession(id)),
    ensureSession: (id, model, now) => counted('ensureSession', store.ensureSession(id, model, now)),
    listMessages: (id) => counted('listMessages', store.listMessages(id)),
    historyVersion: (id) => counted('historyVersion', store.historyVersion(id)),
    beginTurn: (input) => counted('beginTurn', store.beginTurn(input)),
    savePartial: (id, content, thinking, now) => retryStorage('savePartial', () => store.savePartial(id, content, thinking, now), opts),
    completeTurn: (id, input: CompleteTurnInput) => retryStorage('completeTurn', () => store.completeTurn(id, input), opts),
    // Inserts: not repeated (see above).
    recordTurn: (input, finalOf) => counted('recordTurn', store.recordTurn(input, finalOf)),
    archiveIdle: (before, now) => counted('archiveIdle', store.archiveIdle(before, now)),
    ping: () => store.ping(),
    close: () => store.close(),
  };
}
