import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_MODELS, DEFAULT_REGISTRY } from './sim-models.js';
import { startSimulator } from './sim-server.js';
import type { SimModel, Simulator } from './sim-types.js';

/**
 * `parley sim`: runs the Ollama simulator in the foreground. Prints exactly one line,
 * `ollama simulator listening on http://host:port`, once it accepts connections; SIGTERM or
 * SIGINT closes it and lets the process exit.
 */

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

function positiveInt(value: string): number {
  const n = nonNegativeInt(value);
  if (n < 1) throw new InvalidArgumentError('must be at least 1');
  return n;
}

/**
 * Parses `--models`: comma-separated names, each optionally `name=cap+cap` to set capabilities
 * (e.g. `mistral:7b=completion+tools`). Known names (llama3.2, qwen3, nomic-embed-text,
 * tinyllama, all-minilm) keep their presets; other names default to `completion`, or `embedding`
 * when the name contains "embed" or "minilm".
 */
export function parseModelList(list: string): SimModel[] {
  const presets = [...DEFAULT_MODELS, ...DEFAULT_REGISTRY];
  const models: SimModel[] = [];
  for (const item of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [rawName = '', caps] = item.split('=');
    const name = rawName.includes(':') ? rawName : `${rawName}:latest`;
    const preset = presets.find((p) => p.name.toLowerCase() === name.toLowerCase());
    const base: SimModel = preset ? { ...preset } : { name, capabilities: /embed|minilm/i.test(name) ? ['embedding'] : ['completion'] };
    if (caps) base.capabilities = caps.split('+').filter(Boolean);
    models.push(base);
  }
  return models;
}

/** Where the command prints and which signals stop it (tests inject their own). */
export interface SimCommandIo {
  /** Writes the "listening" line. Default: process.stdout. */
  out?: (line: string) => void;
  /** Emits 'SIGTERM'/'SIGINT'. Default: process. */
  signals?: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
  /** Receives the running simulator (tests). */
  onStarted?: (sim: Simulator) => void;
}

/** Adds the `sim` subcommand to a commander program. */
export function registerSimCommand(program: Command, io: SimCommandIo = {}): void {
  const out = io.out ?? ((line: string) => void process.stdout.write(line));
  const signals = io.signals ?? process;
  program
    .command('sim')
    .description('Run the Ollama simulator: an Ollama stand-in for tests, benchmarks and demos')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'TCP port (0 picks a free one)', nonNegativeInt, 11434)
    .option('--ttft-ms <ms>', 'time to first token in milliseconds', nonNegativeInt, 0)
    .option('--token-interval-ms <ms>', 'gap between tokens in milliseconds', nonNegativeInt, 0)
    .option('--reply-tokens <n>', 'length of generated replies in tokens', nonNegativeInt, 8)
    .option('--parallel <n>', 'requests served at once per model (OLLAMA_NUM_PARALLEL)', positiveInt, 1)
    .option('--max-queue <n>', 'waiting requests beyond which it answers 503 (OLLAMA_MAX_QUEUE)', nonNegativeInt, 512)
    .option('--load-ms <ms>', 'delay to load a model that is not loaded, in milliseconds', nonNegativeInt, 0)
    .option('--models <names>', 'comma-separated installed models, each name[=cap+cap] (default llama3.2, qwen3, nomic-embed-text)')
    .option('--no-check-host', "do not emulate Ollama's Host header guard")
    .action(async (opts: Record<string, unknown>) => {
      const sim = await startSimulator({
        host: opts.host as string,
        port: opts.port as number,
        ttftMs: opts.ttftMs as number,
        tokenIntervalMs: opts.tokenIntervalMs as number,
        replyTokens: opts.replyTokens as number,
        parallel: opts.parallel as number,
        maxQueue: opts.maxQueue as number,
        loadMs: opts.loadMs as number,
        models: typeof opts.models === 'string' ? parseModelList(opts.models) : undefined,
        checkHost: opts.checkHost as boolean,
      });
      out(`ollama simulator listening on ${sim.url}\n`);
      const stop = (): void => {
        signals.off('SIGTERM', stop);
        signals.off('SIGINT', stop);
        void sim.close();
      };
      signals.on('SIGTERM', stop);
      signals.on('SIGINT', stop);
      io.onStarted?.(sim);
    });
}
