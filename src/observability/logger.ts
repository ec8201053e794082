import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * JSON logs (pino) with secrets redacted: `authorization` and `cookie` headers, anything named
 * `apiKey`/`api_key`/`token`/`password`. Every request's lines carry `reqId` (= `X-Request-Id`).
 * @param level pino level, default `info`
 * @param destination where lines go; default stdout
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
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
    destination,
  );
}
