import type { SimFaults, SimModel, SimOptions } from './sim-types.js';
import { Catalog, DEFAULT_MODELS, DEFAULT_REGISTRY, parseModelName, fullName } from './sim-models.js';
import { LoadedModels, SlotQueue } from './sim-scheduler.js';

/** Settings in force (defaults filled in); runtime ones change through `setOptions`. */
export interface SimSettings {
  ttftMs: number;
  tokenIntervalMs: number;
  replyTokens: number;
  script: SimOptions['script'];
  parallel: number;
  maxQueue: number;
  loadMs: number;
  maxLoadedModels: number;
  version: string;
}

/** Shared state every handler works on. */
export class SimContext {
  readonly settings: SimSettings;
  faults: SimFaults;
  readonly catalog: Catalog;
  readonly registry: SimModel[];
  readonly slots: SlotQueue;
  readonly loaded: LoadedModels;
  /** Uploaded blobs: digest (`sha256:<hex>`) → size in bytes. Contents are not kept. */
  readonly blobs = new Map<string, number>();
  private scriptQueue: string[] = [];

  constructor(o: SimOptions) {
    this.settings = {
      ttftMs: o.ttftMs ?? 0,
      tokenIntervalMs: o.tokenIntervalMs ?? 0,
      replyTokens: o.replyTokens ?? 8,
      script: o.script,
      parallel: o.parallel ?? 1,
      maxQueue: o.maxQueue ?? 512,
      loadMs: o.loadMs ?? 0,
      maxLoadedModels: o.maxLoadedModels ?? 0,
      version: o.version ?? '0.12.3',
    };
    if (Array.isArray(o.script)) this.scriptQueue = [...o.script];
    this.faults = { ...(o.faults ?? {}) };
    const models = o.models ?? DEFAULT_MODELS;
    this.catalog = new Catalog(models);
    this.registry = [...models, ...(o.registry ?? DEFAULT_REGISTRY)];
    this.slots = new SlotQueue(() => this.settings);
    this.loaded = new LoadedModels(() => this.settings);
  }

  /** Applies runtime options; a new script array starts from its first entry. */
  update(o: Partial<SimSettings>): void {
    for (const [k, v] of Object.entries(o)) {
      if (v !== undefined && k in this.settings) (this.settings as unknown as Record<string, unknown>)[k] = v;
    }
    if ('script' in o) {
      this.settings.script = o.script;
      this.scriptQueue = Array.isArray(o.script) ? [...o.script] : [];
    }
    this.slots.pump();
  }

  /** The next scripted reply for a generating request, or undefined for generated text. */
  nextScript(path: string, body: Record<string, unknown>): string | undefined {
    const s = this.settings.script;
    if (typeof s === 'function') return s({ path, body });
    return this.scriptQueue.shift();
  }

  /** A registry model by name (case-insensitive, `:latest` defaulted). */
  findInRegistry(name: string): SimModel | undefined {
    const want = parseModelName(name);
    if (!want) return undefined;
    const key = fullName(want).toLowerCase();
    return this.registry.find((m) => {
      const n = parseModelName(m.name);
      return n !== undefined && fullName(n).toLowerCase() === key;
    });
  }
}
