/**
 * Public types of the Ollama simulator. Everything here is re-exported from `src/sim/index.ts`.
 * Wire behaviour follows ../shared/reference/ollama-api.md; where the simulator simplifies, the
 * docstring says so.
 */

/** A model the simulator serves (or can pull). */
export interface SimModel {
  /** Model name as `/api/tags` lists it, e.g. `'llama3.2:latest'`. A missing tag means `:latest`. */
  name: string;
  /** Training context in tokens; also the default `num_ctx` (requests may ask for less). Default 4096. */
  contextLength?: number;
  /** Size on disk in bytes (`size` in /api/tags, /api/ps). Default derived from the name. */
  sizeBytes?: number;
  /** `details.family` and the GGUF architecture in /api/show `model_info`. Default `'llama'`. */
  family?: string;
  /** `details.parameter_size`, e.g. `'3.2B'`. Default `'1B'`. */
  parameterSize?: string;
  /** `details.quantization_level`, e.g. `'Q4_K_M'`. Default `'Q4_K_M'`. */
  quantizationLevel?: string;
  /**
   * Capabilities as /api/show reports them. Default `['completion']`.
   * Recognised: `completion`, `tools`, `thinking`, `embedding`, `vision`, `insert`.
   */
  capabilities?: string[];
  /** Length of embedding vectors. Default 8 (for every model; any model can embed, as in Ollama). */
  embeddingLength?: number;
}

/** Faults injected on purpose. Set at start, with `setFaults`, or `POST /_sim/faults`. */
export interface SimFaults {
  /**
   * Destroy every connection as soon as its request head arrives, before any response byte
   * (the client sees a reset). Control endpoints `/_sim/*` are exempt so the fault can be cleared
   * from another process. Refused requests are not recorded.
   */
  refuseConnections?: boolean;
  /** Accept and read every request, never answer (control endpoints exempt). Recorded as usual. */
  hang?: boolean;
  /** Answer model requests (chat/generate/embed, /v1/chat/completions) with this status and `{"error":"simulated failure"}` before any chunk. */
  statusCode?: number;
  /**
   * After N generated tokens (thinking and content chunks both count; a tool-call chunk counts as one)
   * write `{"error":"simulated mid-stream failure"}\n` and end a 200 stream, as Ollama does mid-stream.
   * With N = 0, or with `stream:false`, the error is a real 500 status instead (nothing was sent yet).
   */
  errorAfterTokens?: number;
  /** After N generated tokens, destroy the socket (no error line, no done line). */
  resetAfterTokens?: number;
  /** Extra milliseconds of silence before the first chunk (slow cold load). */
  firstByteDelayMs?: number;
  /** End streams without the `done:true` chunk (Ollama's repetition guard). With `stream:false` the object carries `done:false`. */
  endWithoutDone?: boolean;
}

/** Options of `startSimulator`. All timings in milliseconds. */
export interface SimOptions {
  /** Bind address. Default `'127.0.0.1'`. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 0. */
  port?: number;
  /**
   * Installed models. Default: `llama3.2:latest` (completion, tools), `qwen3:latest`
   * (completion, tools, thinking), `nomic-embed-text:latest` (embedding).
   */
  models?: SimModel[];
  /**
   * Extra models `/api/pull` can fetch (installed models can always be pulled again).
   * Default `tinyllama:latest` and `all-minilm:latest`. Anything else fails mid-stream with
   * `pull model manifest: file does not exist`.
   */
  registry?: SimModel[];
  /** Time to first token. Default 0. */
  ttftMs?: number;
  /** Gap between tokens. Default 0 (tokens are written back to back, one line each). */
  tokenIntervalMs?: number;
  /** Length of generated replies in tokens (`countTokens` of the reply equals it). Default 8. */
  replyTokens?: number;
  /**
   * Scripted replies for chat, generate and /v1/chat/completions. An array is consumed one entry
   * per generating request in the order requests get a slot, then generated text resumes; a
   * function is called for every generating request. A reply may start with `<think>…</think>`
   * to script the thinking part. Scripted replies carry no other thinking.
   */
  script?: string[] | ((req: { path: string; body: Record<string, unknown> }) => string);
  /** Requests served at once per model (OLLAMA_NUM_PARALLEL). Default 1. */
  parallel?: number;
  /**
   * Most requests allowed to wait for a slot (all models together). One more answers 503
   * `server busy, please try again.  maximum pending requests exceeded`. Default 512.
   */
  maxQueue?: number;
  /** Delay when a request needs a model that is not loaded (or a different `num_ctx`). Default 0. */
  loadMs?: number;
  /** Most models loaded at once; loading one more unloads the idle model that expires first. 0 = no limit (default). */
  maxLoadedModels?: number;
  /**
   * Most requests kept in `requests` (long benchmarks); past it the oldest are dropped in batches
   * of 10%. Ids keep counting. Default 50 000.
   */
  maxRecordedRequests?: number;
  /** `/api/version`. Default `'0.12.3'`. */
  version?: string;
  /** Initial faults. Default none. */
  faults?: SimFaults;
  /**
   * Emulate Ollama's DNS-rebinding guard (reference §6.5) while bound to a loopback address:
   * a Host that is not localhost, a loopback/private/unspecified IP, `*.localhost`, `*.local`,
   * `*.internal` or this machine's hostname gets 403 with an empty body. Default true.
   */
  checkHost?: boolean;
}

/** Options that can change while the simulator runs (`setOptions`, `POST /_sim/options`). */
export type SimRuntimeOptions = Partial<
  Pick<SimOptions, 'ttftMs' | 'tokenIntervalMs' | 'replyTokens' | 'script' | 'parallel' | 'maxQueue' | 'loadMs'>
>;

/** One request as the simulator saw it. Timestamps are `Date.now()` milliseconds. */
export interface RecordedRequest {
  /** 1, 2, 3… in arrival order (restarts at 1 after `reset`). */
  id: number;
  method: string;
  /** URL path without the query string. */
  path: string;
  /** Request headers, lower-case names, as node:http parsed them. */
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body; undefined if none, not JSON, or a blob upload. */
  body: unknown;
  /** Prompt tokens as the sim counted them, before truncation to the context (chat, generate, embed). */
  promptTokens?: number;
  receivedAt: number;
  /** When the status line and headers went out. */
  firstByteAt?: number;
  /** When the response was completely written. */
  finishedAt?: number;
  /** The client closed the connection before the response ended (not set for server-side resets or crash). */
  aborted: boolean;
  abortedAt?: number;
  /** HTTP status sent, if any. */
  status?: number;
}

/** A running simulator. */
export interface Simulator {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Every request in arrival order, management and model requests alike (not `/_sim/*`). */
  readonly requests: RecordedRequest[];
  /** Highest number of model requests holding a slot at once (all models) since start or `reset`. */
  readonly maxConcurrent: number;
  /** Model requests holding a slot now (loading or generating). */
  readonly active: number;
  /** Model requests waiting for a slot now. */
  readonly waiting: number;
  /** Replaces the fault set (`{}` clears). */
  setFaults(f: SimFaults): void;
  /** Changes runtime options; a new `script` array restarts consumption from its first entry. */
  setOptions(o: SimRuntimeOptions): void;
  /** Clears recorded requests and `maxConcurrent` (models and loaded state stay). */
  reset(): void;
  /** Names of loaded models, e.g. `['llama3.2:latest']`. */
  loadedModels(): string[];
  /** Destroys every socket now, stops listening and forgets loaded models (process-death stand-in). */
  crash(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  /** Stops listening and destroys every socket. */
  close(): Promise<void>;
  /** Polls `requests` every 10 ms until `pred` is true; rejects after `timeoutMs` (default 5000). */
  waitFor(pred: (r: RecordedRequest[]) => boolean, timeoutMs?: number): Promise<void>;
}

/** Statistics served by `GET /_sim/stats`. */
export interface SimStats {
  active: number;
  waiting: number;
  maxConcurrent: number;
  /** Loaded model names. */
  loaded: string[];
}
