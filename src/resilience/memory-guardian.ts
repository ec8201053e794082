import { ParleyError } from '../errors/parley-error.js';

export type MemoryState = 'ok' | 'evicting' | 'shedding';

export interface MemorySample {
  rss: number;
  heapUsed: number;
}

export interface MemoryGuardianOptions {
  /** RSS above which caches are evicted, in bytes; 0 = never. */
  evictAboveRssBytes: number;
  /** RSS above which new model requests are refused, in bytes; 0 = never. */
  shedAboveRssBytes: number;
  /** Sampling interval, in ms (the timer is unref'd). */
  sampleIntervalMs: number;
  /** Memory source; default `process.memoryUsage()` (tests inject figures). */
  sample?: () => MemorySample;
  /** Called on state changes (metrics, logs). */
  onStateChange?: (state: MemoryState, sample: MemorySample) => void;
  /** Called after every sample (metrics). */
  onSample?: (sample: MemorySample) => void;
}

/** For /api/health. */
export interface MemorySnapshot {
  state: MemoryState;
  rss_bytes: number;
  heap_used_bytes: number;
  evict_above_rss_bytes: number;
  shed_above_rss_bytes: number;
  evictions: number;
  shed_requests: number;
}

/**
 * The process-wide memory guardian (seed 000). Samples memory on an unref'd interval:
 * - above `evictAboveRssBytes` (state `evicting`) every registered evictor runs on each sample
 *   (the response cache empties), so what can be rebuilt is given back;
 * - above `shedAboveRssBytes` (state `shedding`) `admit()` refuses new model requests with
 *   503 PARLEY_ERR_OVERLOADED while running ones finish.
 * Per-session and per-stream caps are enforced where the bytes are (pipeline, ClientStream).
 */
export class MemoryGuardian {
  private current: MemoryState = 'ok';
  private last: MemorySample = { rss: 0, heapUsed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private readonly evictors: Array<() => void> = [];
  private evictions = 0;
  private shed = 0;

  constructor(private readonly opts: MemoryGuardianOptions) {}

  get state(): MemoryState {
    return this.current;
  }

  /** Registers something to empty when memory runs high (caches). */
  addEvictor(fn: () => void): void {
    this.evictors.push(fn);
  }

  start(): void {
    if (this.timer) return;
    this.sampleNow();
    this.timer = setInterval(() => this.sampleNow(), this.opts.sampleIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one sample, updates the state, evicts when above the eviction threshold. */
  sampleNow(): MemoryState {
    const s = this.opts.sample ? this.opts.sample() : process.memoryUsage();
    this.last = { rss: s.rss, heapUsed: s.heapUsed };
    this.opts.onSample?.(this.last);
    const { evictAboveRssBytes: evict, shedAboveRssBytes: shed } = this.opts;
    const next: MemoryState = shed > 0 && s.rss > shed ? 'shedding' : evict > 0 && s.rss > evict ? 'evicting' : 'ok';
    if (next !== 'ok') {
      for (const fn of this.evictors) fn();
      this.evictions++;
    }
    if (next !== this.current) {
      this.current = next;
      this.opts.onStateChange?.(next, this.last);
    }
    return next;
  }

  /**
   * Admission check for a new model request.
   * @throws ParleyError PARLEY_ERR_OVERLOADED (503, Retry-After 5) while shedding
   */
  admit(): void {
    if (this.current !== 'shedding') return;
    this.shed++;
    throw new ParleyError('PARLEY_ERR_OVERLOADED', 'Parley is low on memory and is not taking new requests; please try again shortly', { headers: { 'Retry-After': '5' } });
  }

  snapshot(): MemorySnapshot {
    return {
      state: this.current,
      rss_bytes: this.last.rss,
      heap_used_bytes: this.last.heapUsed,
      evict_above_rss_bytes: this.opts.evictAboveRssBytes,
      shed_above_rss_bytes: this.opts.shedAboveRssBytes,
      evictions: this.evictions,
      shed_requests: this.shed,
    };
  }
}
