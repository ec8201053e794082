import { ExponentialBackoff, handleWhen, type GeneratorFn, retry, type IBackoff, type IBackoffFactory, type IRetryBackoffContext } from 'cockatiel';
import { isRetryableFailure, isUpstreamStatusFailure } from './upstream-failure.js';

export interface RetryOptions {
  /** Retries after the first attempt (0 = never retry). */
  maxRetries: number;
  /** First delay of the exponential backoff, in ms. */
  baseDelayMs: number;
  /** Largest delay, in ms. */
  maxDelayMs: number;
  /** Largest upstream Retry-After honoured, in ms. */
  retryAfterCapMs: number;
  /** Random source in [0, 1) for the jitter; default Math.random (tests pass a fixed one). */
  random?: () => number;
}

export interface RetryRun {
  /**
   * Asked before each retry, with the error: false stops retrying (the pipeline answers false once
   * anything of the reply reached the client). Default: always true.
   */
  mayRetry?: (error: unknown) => boolean;
  /** Called before each retry with the error that caused it and the delay chosen, in ms. */
  onRetry?: (error: unknown, delayMs: number, attempt: number) => void;
  /** Aborts the waits and stops retrying (the client went away). */
  signal?: AbortSignal;
}

/**
 * Retries of model requests, over cockatiel's RetryPolicy: exponential backoff with jitter
 * (each delay uniform in [d/2, d), d doubling from baseDelayMs up to maxDelayMs), at most `maxRetries` retries, only for retryable failures (see upstream-failure.ts), and
 * only while `mayRetry` allows it. When the upstream sent `Retry-After`, the delay is at least
 * that, capped at `retryAfterCapMs`.
 */
export class RequestRetry {
  constructor(private readonly opts: RetryOptions) {}

  /**
   * Runs `attempt(n)` (n = 0, 1, 2, …) until it resolves, fails with something not retryable, or
   * the retries are used up; then resolves or rejects like the last attempt.
   */
  async execute<T>(attempt: (n: number) => Promise<T>, run: RetryRun = {}): Promise<T> {
    const mayRetry = run.mayRetry ?? (() => true);
    const policy = retry(
      handleWhen((e) => isRetryableFailure(e) && !run.signal?.aborted && mayRetry(e)),
      { maxAttempts: this.opts.maxRetries, backoff: new RetryAfterBackoff(this.opts) },
    );
    const listener = policy.onRetry((r) => {
      if ('error' in r) run.onRetry?.(r.error, r.delay, r.attempt);
    });
    try {
      return await policy.execute((ctx) => attempt(ctx.attempt), run.signal);
    } finally {
      listener.dispose();
    }
  }

  /** The delay before retry number `attempt` (1-based) after `error`; exposed for tests. */
  delayFor(error: unknown, attempt: number): number {
    let b: IBackoff<IRetryBackoffContext<unknown>> | undefined;
    const factory = new RetryAfterBackoff(this.opts);
    for (let i = 1; i <= attempt; i++) {
      const ctx = { attempt: i, result: { error: error as Error }, signal: new AbortController().signal };
      b = b ? b.next(ctx) : factory.next(ctx);
    }
    return b!.duration;
  }
}

/** Exponential backoff with jitter, raised to the upstream's Retry-After (capped). */
class RetryAfterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  private readonly inner: IBackoffFactory<unknown>;

  constructor(private readonly opts: RetryOptions, inner?: IBackoffFactory<unknown>) {
    const random = opts.random ?? Math.random;
    // Half jitter: the n-th delay is uniform in [d/2, d) with d = base * 2^n, capped at maxDelay.
    const generator: GeneratorFn<number> = (state, o) => {
      const n = state ?? 0;
      const d = Math.min(o.maxDelay, o.initialDelay * Math.pow(o.exponent, n));
      return [Math.floor(d / 2 + random() * (d / 2)), n + 1];
    };
    this.inner = inner ?? new ExponentialBackoff<number>({ initialDelay: Math.max(1, opts.baseDelayMs), maxDelay: Math.max(1, opts.maxDelayMs), generator });
  }

  next(ctx: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    return this.wrap(this.inner.next(ctx as never), ctx);
  }

  private wrap(b: IBackoff<unknown>, ctx: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    const error = 'error' in ctx.result ? ctx.result.error : undefined;
    const asked = isUpstreamStatusFailure(error) ? error.retryAfterMs : undefined;
    const duration = asked === undefined ? b.duration : Math.max(b.duration, Math.min(asked, this.opts.retryAfterCapMs));
    return {
      duration,
      next: (c: IRetryBackoffContext<unknown>) => this.wrap(b.next(c as never), c),
    };
  }
}
