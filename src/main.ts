import { buildApp, type App } from './app.js';
import type { ParleyConfig } from './config/schema.js';
import { createLogger } from './observability/logger.js';

/**
 * Runs Parley until SIGTERM/SIGINT: load config → build app → listen. On a signal it stops
 * accepting requests, lets in-flight replies finish (up to shutdown.drainTimeoutMs), then closes
 * the database and exits 0. A second signal exits at once.
 */
export async function serve(config: ParleyConfig): Promise<App> {
  const logger = createLogger(config.logLevel);
  const app = await buildApp({ config, logger });
  await app.listen();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'parley.forced_exit');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'parley.stopping');
    app.close().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: e }, 'parley.stop_failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return app;
}
