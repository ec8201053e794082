import { createHash } from 'node:crypto';
import type { SimModel } from './sim-types.js';
import { localTime } from './sim-wire.js';

/**
 * The simulator's model catalog (what is "installed": /api/tags, /api/show, pull, copy, delete)
 * and the loaded-model state (what /api/ps shows; keep_alive timers).
 */

/** Default installed models. */
export const DEFAULT_MODELS: SimModel[] = [
  { name: 'llama3.2:latest', family: 'llama', parameterSize: '3.2B', quantizationLevel: 'Q4_K_M', sizeBytes: 2_019_393_189, capabilities: ['completion', 'tools'] },
  { name: 'qwen3:latest', family: 'qwen3', parameterSize: '8.2B', quantizationLevel: 'Q4_K_M', sizeBytes: 5_225_388_164, capabilities: ['completion', 'tools', 'thinking'] },
  { name: 'nomic-embed-text:latest', family: 'nomic-bert', parameterSize: '137M', quantizationLevel: 'F16', sizeBytes: 274_302_450, capabilities: ['embedding'], embeddingLength: 8 },
];

/** Default extra registry models (pullable but not installed). */
export const DEFAULT_REGISTRY: SimModel[] = [
  { name: 'tinyllama:latest', family: 'llama', parameterSize: '1B', quantizationLevel: 'Q4_0', sizeBytes: 637_700_138, capabilities: ['completion'] },
  { name: 'all-minilm:latest', family: 'bert', parameterSize: '23M', quantizationLevel: 'F16', sizeBytes: 45_960_996, capabilities: ['embedding'] },
];

/** Parsed `[host/][namespace/]model[:tag]`. */
export interface ModelName {
  host: string;
  namespace: string;
  model: string;
  tag: string;
}

const PART_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Parses a model name with Ollama's defaults; undefined when invalid. */
export function parseModelName(raw: string): ModelName | undefined {
  if (!raw) return undefined;
  let rest = raw;
  let tag = 'latest';
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  if (parts.length > 3 || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return undefined;
  const model = parts.pop() as string;
  const namespace = parts.pop() ?? 'library';
  const host = parts.pop() ?? 'registry.ollama.ai';
  if (!PART_RE.test(model) || !PART_RE.test(namespace) || !/^[A-Za-z0-9_.:-]+$/.test(host)) return undefined;
  return { host, namespace, model, tag };
}

/** Display name as /api/tags shows it: `model:tag`, `ns/model:tag` or `host/ns/model:tag`. */
export function displayName(n: ModelName): string {
  if (n.host !== 'registry.ollama.ai') return `${n.host}/${n.namespace}/${n.model}:${n.tag}`;
  if (n.namespace !== 'library') return `${n.namespace}/${n.model}:${n.tag}`;
  return `${n.model}:${n.tag}`;
}

/** Full name as some errors show it: `registry.ollama.ai/library/llama3.2:latest`. */
export function fullName(n: ModelName): string {
  return `${n.host}/${n.namespace}/${n.model}:${n.tag}`;
}

/** A display name normalised from user input, or the input itself when it does not parse. */
export function normalizeName(raw: string): string {
  const n = parseModelName(raw);
  return n ? displayName(n) : raw;
}

/** An installed model with everything the wire needs. */
export interface CatalogModel {
  name: string;
  parsed: ModelName;
  contextLength: number;
  sizeBytes: number;
  family: string;
  parameterSize: string;
  quantizationLevel: string;
  capabilities: string[];
  embeddingLength: number;
  digest: string;
  modifiedAtMs: number;
  system?: string;
  template?: string;
  parentModel: string;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Fills a SimModel's defaults; `modifiedAtMs` orders /api/tags. */
export function toCatalogModel(m: SimModel, modifiedAtMs: number): CatalogModel {
  const parsed = parseModelName(m.name);
  if (!parsed) throw new Error(`invalid simulator model name: ${m.name}`);
  const name = displayName(parsed);
  return {
    name,
    parsed,
    contextLength: m.contextLength ?? 4096,
    sizeBytes: m.sizeBytes ?? 1_000_000_000 + (parseInt(sha256(name).slice(0, 6), 16) % 1_000_000_000),
    family: m.family ?? 'llama',
    parameterSize: m.parameterSize ?? '1B',
    quantizationLevel: m.quantizationLevel ?? 'Q4_K_M',
    capabilities: m.capabilities ?? ['completion'],
    embeddingLength: m.embeddingLength ?? 8,
    digest: sha256('manifest:' + name),
    modifiedAtMs,
    parentModel: '',
  };
}

/** The `details` object of /api/tags, /api/ps and /api/show. */
export function details(m: CatalogModel): Record<string, unknown> {
  return {
    parent_model: m.parentModel,
    format: 'gguf',
    family: m.family,
    families: [m.family],
    parameter_size: m.parameterSize,
    quantization_level: m.quantizationLevel,
  };
}

/** Installed models, looked up case-insensitively with `:latest` defaulted. */
export class Catalog {
  private readonly models = new Map<string, CatalogModel>();

  constructor(initial: SimModel[]) {
    const now = Date.now();
    initial.forEach((m, i) => this.put(toCatalogModel(m, now - (i + 1) * 3_600_000)));
  }

  private static key(name: string): string | undefined {
    const n = parseModelName(name);
    return n ? fullName(n).toLowerCase() : undefined;
  }

  find(name: unknown): CatalogModel | undefined {
    if (typeof name !== 'string') return undefined;
    const k = Catalog.key(name);
    return k === undefined ? undefined : this.models.get(k);
  }

  put(m: CatalogModel): void {
    this.models.set(fullName(m.parsed).toLowerCase(), m);
  }

  remove(name: string): boolean {
    const k = Catalog.key(name);
    return k !== undefined && this.models.delete(k);
  }

  /** Newest `modified_at` first, as /api/tags sorts. */
  list(): CatalogModel[] {
    return [...this.models.values()].sort((a, b) => b.modifiedAtMs - a.modifiedAtMs);
  }
}

/** The /api/tags entry of a model. */
export function tagsEntry(m: CatalogModel): Record<string, unknown> {
  return { name: m.name, model: m.name, modified_at: localTime(m.modifiedAtMs, 123_456), size: m.sizeBytes, digest: m.digest, details: details(m) };
}

/** The /api/show body of a model (verbose adds empty tokenizer arrays). */
export function showBody(m: CatalogModel, verbose: boolean): Record<string, unknown> {
  const arch = m.family;
  const template = m.template ?? '{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>';
  const params = 'stop                           "<|user|>"';
  const modelInfo: Record<string, unknown> = {
    'general.architecture': arch,
    'general.basename': m.parsed.model,
    'general.file_type': 15,
    'general.parameter_count': parameterCount(m.parameterSize),
    'general.quantization_version': 2,
    [`${arch}.context_length`]: m.contextLength,
    [`${arch}.embedding_length`]: m.embeddingLength,
  };
  if (verbose) {
    modelInfo['tokenizer.ggml.tokens'] = [];
    modelInfo['tokenizer.ggml.token_type'] = [];
  }
  const body: Record<string, unknown> = {
    license: 'Simulated model license.',
    modelfile: `# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM ${m.name}\n\nFROM /simulated/blobs/sha256-${m.digest}\nTEMPLATE """${template}"""\nPARAMETER ${params}\n`,
    parameters: params,
    template,
  };
  if (m.system) body.system = m.system;
  body.details = details(m);
  body.model_info = modelInfo;
  body.capabilities = m.capabilities;
  body.modified_at = localTime(m.modifiedAtMs, 123_456);
  return body;
}

function parameterCount(size: string): number {
  const m = /^([\d.]+)\s*([KMBT]?)/i.exec(size);
  if (!m) return 0;
  const mult: Record<string, number> = { '': 1, K: 1e3, M: 1e6, B: 1e9, T: 1e12 };
  return Math.round(Number(m[1]) * (mult[(m[2] ?? '').toUpperCase()] ?? 1));
}
