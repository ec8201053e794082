import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { ParleyError } from '../errors/parley-error.js';
import { countsAgainstUpstream } from './upstream-failure.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface UpstreamBreakerOptions {
  /** Upstream URL, for messages. */
  url: string;
  /** Consecutive upstream faults that open the breaker (seed 000: 5). */
  threshold: number;
  /** How long the breaker stays open before one probe request may pass, in ms. */
  halfOpenAfterMs: number;
  /** Called on every state change (metrics, logs). */
  onStateChange?: (state: BreakerState) => void;
}

/** A snapshot for /api/health and the admin API. */
export interface BreakerSnapshot {
  state: BreakerState;
  /** Consecutive upstream faults counted so far (0 when closed and healthy). */
  consecutive_failures: number;
  /** ISO time the breaker last opened, or null. */
  opened_at: string | null;
  /** The error code of the failure that last opened it, or null. */
  last_failure: string | null;
}

/**
 * cockatiel's ConsecutiveBreaker, except that a call's success does not reset the count while the
 * circuit is closed: the pipeline's call ends at the upstream's status line, and only a reply
 * relayed whole (`completed`) shows the upstream healthy. A half-open probe's success still resets.
 */
class ReplyConsecutiveBreaker extends ConsecutiveBreaker {
  override success(state?: CircuitState): void {
    if (state !== CircuitState.Closed) super.success();
  }

  /** A reply was relayed whole: the consecutive faults start again from 0. */
  completed(): void {
    super.success();
  }
}

/**
 * One upstream's circuit breaker, over cockatiel's CircuitBreakerPolicy: opens after `threshold`
 * consecutive upstream faults (see `countsAgainstUpstream`: a 404, a model that cannot load, a
 * client abort never count, and do not reset the count either), rejects at once while open
 * (PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN), and after `halfOpenAfterMs` lets exactly one probe through:
 * its success closes the breaker, its failure opens it again.
 *
 * A call has two parts. `execute` runs the request up to the upstream's status line (a fault there
 * counts; a half-open probe is decided there). The body is relayed after it, so the pipeline then
 * reports how the reply ended: `recordSuccess` (relayed whole: the count starts again from 0) or
 * `recordFault` (broken mid-body: counted).
 */
export class UpstreamBreaker {
  private readonly policy: CircuitBreakerPolicy;
  private readonly counter: ReplyConsecutiveBreaker;
  private openedAt: number | undefined;
  private lastFailureCode: string | null = null;

  constructor(private readonly opts: UpstreamBreakerOptions) {
    this.counter = new ReplyConsecutiveBreaker(opts.threshold);
    this.policy = circuitBreaker(handleWhen(countsAgainstUpstream), { halfOpenAfter: opts.halfOpenAfterMs, breaker: this.counter });
    this.policy.onBreak((reason) => {
      this.openedAt = Date.now();
      const err = 'error' in reason ? (reason.error as { code?: string }) : undefined;
      this.lastFailureCode = err?.code ?? null;
    });
    this.policy.onStateChange((s) => opts.onStateChange?.(toState(s)));
  }

  get state(): BreakerState {
    return toState(this.policy.state);
  }

  /**
   * Whether a request sent now would be let through: closed, or open long enough that this
   * request would be the half-open probe. False while open, or while a probe is running.
   */
  get admits(): boolean {
    const s = this.policy.state;
    if (s === CircuitState.Closed) return true;
    if (s === CircuitState.Open) return this.openedAt !== undefined && Date.now() - this.openedAt >= this.opts.halfOpenAfterMs;
    return false;
  }

  snapshot(): BreakerSnapshot {
    return {
      state: this.state,
      consecutive_failures: this.counter.state,
      opened_at: this.state === 'closed' || this.openedAt === undefined ? null : new Date(this.openedAt).toISOString(),
      last_failure: this.state === 'closed' ? null : this.lastFailureCode,
    };
  }

  /**
   * Runs `fn` through the breaker. Faults it throws are counted; other errors pass untouched. Its
   * success closes a half-open breaker, but while closed it does not reset the count of
   * consecutive faults: `recordSuccess` does, once the reply was relayed whole.
   * @throws ParleyError PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN at once while open (or while a probe runs)
   */
  async execute<T>(fn: () => Promise<T>): Promise<T> {
    // cockatiel queues calls behind a running half-open probe; Parley rejects them at once instead.
    if (this.policy.state === CircuitState.HalfOpen) throw this.openError();
    try {
      return await this.policy.execute(() => fn());
    } catch (e) {
      if (e instanceof BrokenCircuitError) throw this.openError(e);
      throw e;
    }
  }

  /** A reply opened through `execute` was relayed whole: the consecutive faults start again from 0. */
  recordSuccess(): void {
    this.counter.completed();
  }

  /**
   * A reply opened through `execute` broke mid-body. Counted like a fault thrown inside `execute`
   * (so it can open the breaker) while closed; ignored while open (already counted) or half-open
   * (the probe decides). Errors that are not upstream faults (`countsAgainstUpstream`) are ignored.
   */
  async recordFault(error: unknown): Promise<void> {
    if (this.policy.state !== CircuitState.Closed || !countsAgainstUpstream(error)) return;
    try {
      // cockatiel 3 has no call to record an outcome; a call that fails with the fault counts it.
      await this.policy.execute(() => Promise.reject(error));
    } catch (e) {
      if (e !== error) throw e;
    }
  }

  private openError(cause?: unknown): ParleyError {
    return new ParleyError('PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN', `Ollama at ${this.opts.url} failed ${this.opts.threshold} times in a row; its circuit breaker is open`, { cause });
  }
}

function toState(s: CircuitState): BreakerState {
  if (s === CircuitState.Closed) return 'closed';
  if (s === CircuitState.HalfOpen) return 'half_open';
  return 'open';
}
