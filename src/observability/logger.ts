import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * JSON logs (pino) with secrets redacted: `authorization` and `cookie` headers, anything named
 * `apiKey`/`api_key`/`token`/`password`. Every request's lines carry `reqId` (= `X-Request-Id`).
 *
 * By default lines go to stdout through an asynchronous sonic-boom: a line is queued and written
 * by the next `write(2)` (lines queued while one write is in flight go out together), so logging
 * never blocks the event loop on the terminal or the log file. pino flushes the queue
 * synchronously when the process exits (also on `process.exit` and uncaught errors); only a
 * `kill -9` can lose the lines of the last write in flight. Synchronous stdout writes were 6.7% of
 * Parley's CPU in the benchmark (bench/results/latest.md).
 * @param level pino level, default `info`
 * @param destination where lines go; default stdout (asynchronous, as above)
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  const logger = pino(
    {
      level,
      base: { service: 'parley' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
          '*.apiKey',
          '*.api_key',
          '*.token',
          '*.password',
          'apiKey',
          'token',
          'password',
        ],
        censor: '[redacted]',
      },
    },
    dest,
  );
  const access = pino({ level, base: { service: 'parley' }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  logger.on('level-change', (name, _value, _prevName, _prevValue, instance) => {
    if (instance === logger) access.level = name;
  });
  accessLoggers.set(logger, access);
  return logger;
}

const accessLoggers = new WeakMap<Logger, Logger>();

/**
 * The logger of the one access line per request (http-server.ts): the same destination, level
 * (kept in step) and base fields as `logger`, without redaction. Its fields are fixed (`reqId`,
 * method, url, status, duration) and hold no secret, and matching the wildcard redaction paths
 * against every line was a measurable part of a request's CPU (bench/results/latest.md).
 * A logger not made by `createLogger` is its own access logger.
 */
export function accessLoggerOf(logger: Logger): Logger {
  return accessLoggers.get(logger) ?? logger;
}
