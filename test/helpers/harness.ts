import { Writable } from 'node:stream';
import { Ollama } from 'ollama';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { startSimulator, type SimOptions, type Simulator } from '../../src/sim/index.js';
import type { Database } from '../../src/storage/database.js';

export interface Harness {
  sim: Simulator;
  app: App;
  /** Parley's base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** ollama-js pointed at Parley, as a user would configure it. */
  ollama: Ollama;
  /** Every log line Parley wrote, parsed. */
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  sim?: SimOptions;
  /** An already running simulator to use instead of starting one. */
  simulator?: Simulator;
  config?: ConfigInput;
  database?: Database;
  now?: () => Date;
}

/**
 * Parley on port 0 in front of the Ollama simulator on port 0, over real HTTP, with an in-memory
 * SQLite database unless one is given. Logs are captured (level debug) instead of printed.
 */
export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const sim = opts.simulator ?? (await startSimulator(opts.sim ?? {}));
  const config = loadConfig({
    overrides: {
      port: 0,
      databaseUrl: ':memory:',
      logLevel: 'debug',
      ...opts.config,
      upstreams: opts.config?.upstreams ?? [sim.url],
      upstream: { healthIntervalMs: 0, ...opts.config?.upstream },
      sessions: { sweepIntervalMs: 0, ...opts.config?.sessions },
    },
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const app = await buildApp({ config, logger: createLogger(config.logLevel, sink), ...(opts.database ? { database: opts.database } : {}), ...(opts.now ? { now: opts.now } : {}) });
  const url = await app.listen();
  return {
    sim,
    app,
    url,
    ollama: new Ollama({ host: url }),
    logs,
    async close() {
      await app.close();
      if (!opts.simulator) await sim.close();
    },
  };
}
