import type { CatalogModel } from './sim-models.js';
import { sleep } from './sim-wire.js';

/**
 * Scheduling state: per-model slots (OLLAMA_NUM_PARALLEL) with a bounded wait queue
 * (OLLAMA_MAX_QUEUE), and loaded models with their keep_alive timers (reference §4.4, §6.2).
 */

/** Ollama's default keep_alive (5m) in milliseconds. */
export const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;
/** Go's max duration (~292 years) in milliseconds: `expires_at` of a model kept for ever. */
const FOREVER_MS = 9_223_372_036_854;

interface Waiter {
  resolve: (r: 'ok' | 'aborted') => void;
}

interface ModelSlots {
  active: number;
  waiters: Waiter[];
}

/** Per-model slots; `waiting` counts all models together against `maxQueue`. */
export class SlotQueue {
  active = 0;
  waiting = 0;
  maxConcurrent = 0;
  private readonly slots = new Map<string, ModelSlots>();

  constructor(private readonly limits: () => { parallel: number; maxQueue: number }) {}

  private of(key: string): ModelSlots {
    let s = this.slots.get(key);
    if (!s) {
      s = { active: 0, waiters: [] };
      this.slots.set(key, s);
    }
    return s;
  }

  private grant(s: ModelSlots): void {
    s.active++;
    this.active++;
    if (this.active > this.maxConcurrent) this.maxConcurrent = this.active;
  }

  /** Takes a slot for a model: 'busy' when the wait queue is full, 'aborted' if `signal` fires while waiting. */
  acquire(key: string, signal: AbortSignal): Promise<'ok' | 'busy' | 'aborted'> {
    const s = this.of(key);
    if (signal.aborted) return Promise.resolve('aborted');
    if (s.active < Math.max(1, this.limits().parallel) && s.waiters.length === 0) {
      this.grant(s);
      return Promise.resolve('ok');
    }
    if (this.waiting >= this.limits().maxQueue) return Promise.resolve('busy');
    return new Promise((resolve) => {
      const w: Waiter = {
        resolve: (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
      };
      const onAbort = (): void => {
        const i = s.waiters.indexOf(w);
        if (i >= 0) {
          s.waiters.splice(i, 1);
          this.waiting--;
          w.resolve('aborted');
        }
      };
      s.waiters.push(w);
      this.waiting++;
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Frees a slot and hands it to the next waiter of the same model. */
  release(key: string): void {
    const s = this.of(key);
    s.active--;
    this.active--;
    this.pump();
  }

  /** Grants free slots to waiters (also after `parallel` grows). */
  pump(): void {
    const parallel = Math.max(1, this.limits().parallel);
    for (const s of this.slots.values()) {
      while (s.active < parallel && s.waiters.length > 0) {
        const w = s.waiters.shift() as Waiter;
        this.waiting--;
        this.grant(s);
        w.resolve('ok');
      }
    }
  }

  /** Drops every waiter (crash); holders keep their count until they release. */
  dropWaiters(): void {
    for (const s of this.slots.values()) {
      for (const w of s.waiters.splice(0)) {
        this.waiting--;
        w.resolve('aborted');
      }
    }
  }
}

/** A loaded model as /api/ps shows it. */
export interface LoadedModel {
  model: CatalogModel;
  numCtx: number;
  keepAliveMs: number;
  refs: number;
  /** When it unloads; recomputed while in use. */
  expiresAtMs: number;
  timer?: NodeJS.Timeout;
  loading?: Promise<boolean>;
}

/** Loaded models and keep_alive semantics: default 5m, sticky, negative = for ever, 0 = unload when idle. */
export class LoadedModels {
  private readonly loaded = new Map<string, LoadedModel>();

  constructor(private readonly settings: () => { loadMs: number; maxLoadedModels: number }) {}

  /**
   * Makes sure the model is loaded with `numCtx` (waiting `loadMs` if not, or if `numCtx`
   * changed), applies `keepAliveMs` when given, and takes a reference. False if aborted meanwhile.
   */
  async acquire(model: CatalogModel, numCtx: number, keepAliveMs: number | undefined, signal: AbortSignal): Promise<boolean> {
    for (;;) {
      const cur = this.loaded.get(model.name);
      if (cur?.loading) {
        await cur.loading;
        if (signal.aborted) return false;
        continue;
      }
      if (cur && cur.numCtx === numCtx) {
        this.ref(cur, keepAliveMs);
        return true;
      }
      const entry: LoadedModel = cur ?? { model, numCtx, keepAliveMs: DEFAULT_KEEP_ALIVE_MS, refs: 0, expiresAtMs: 0 };
      if (!cur) this.evictFor();
      entry.numCtx = numCtx;
      entry.loading = sleep(this.settings().loadMs, signal);
      this.loaded.set(model.name, entry);
      const ok = await entry.loading;
      entry.loading = undefined;
      if (!ok) {
        if (entry.refs === 0 && !cur) this.loaded.delete(model.name);
        return false;
      }
      this.ref(entry, keepAliveMs);
      return true;
    }
  }

  private ref(e: LoadedModel, keepAliveMs: number | undefined): void {
    if (keepAliveMs !== undefined) e.keepAliveMs = keepAliveMs;
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    e.refs++;
    e.expiresAtMs = Date.now() + (e.keepAliveMs === Infinity ? FOREVER_MS : e.keepAliveMs);
  }

  /** Drops a reference; the idle timer starts when the last one goes. */
  release(model: CatalogModel): void {
    const e = this.loaded.get(model.name);
    if (!e) return;
    e.refs = Math.max(0, e.refs - 1);
    if (e.refs > 0) return;
    if (e.keepAliveMs === 0) {
      this.unload(model.name);
      return;
    }
    if (e.keepAliveMs === Infinity) {
      e.expiresAtMs = Date.now() + FOREVER_MS;
      return;
    }
    e.expiresAtMs = Date.now() + e.keepAliveMs;
    e.timer = setTimeout(() => this.unload(model.name), e.keepAliveMs);
    e.timer.unref();
  }

  /** `keep_alive:0` on a load request: unload now, or as soon as in-flight requests finish. */
  expire(name: string): void {
    const e = this.loaded.get(name);
    if (!e) return;
    e.keepAliveMs = 0;
    e.expiresAtMs = Date.now();
    if (e.refs === 0 && !e.loading) this.unload(name);
  }

  unload(name: string): void {
    const e = this.loaded.get(name);
    if (e?.timer) clearTimeout(e.timer);
    this.loaded.delete(name);
  }

  private evictFor(): void {
    const max = this.settings().maxLoadedModels;
    if (!max || this.loaded.size < max) return;
    const idle = [...this.loaded.values()].filter((e) => e.refs === 0 && !e.loading).sort((a, b) => a.expiresAtMs - b.expiresAtMs);
    if (idle[0]) this.unload(idle[0].model.name);
  }

  /** Loaded models, latest `expires_at` first. */
  list(): LoadedModel[] {
    return [...this.loaded.values()].filter((e) => !e.loading).sort((a, b) => b.expiresAtMs - a.expiresAtMs);
  }

  names(): string[] {
    return this.list().map((e) => e.model.name);
  }

  clear(): void {
    for (const name of [...this.loaded.keys()]) this.unload(name);
  }
}
