import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createHttpServer } from '../api/http/http-server.js';
import { createLogger } from './logger.js';

function sink(): { lines: Array<Record<string, unknown>>; stream: Writable } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, stream };
}

describe('logs', () => {
  it('writes one access line per request with its request id, follows level changes, and redacts secrets in other lines', async () => {
    const { lines, stream } = sink();
    const logger = createLogger('info', stream);
    const app = createHttpServer({ logger, bodyLimitBytes: 1024 });
    app.get('/ping', async (request) => {
      request.log.info({ apiKey: 'pk_secret', nested: { token: 't0ken' } }, 'handler.note');
      return { ok: true };
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`${url}/ping`, { headers: { authorization: 'Bearer pk_secret', 'x-request-id': 'req-1' } });
      expect(res.headers.get('x-request-id')).toBe('req-1');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const access = lines.filter((l) => l.msg === 'request completed');
      expect(access).toEqual([{ level: 30, time: expect.any(String), service: 'parley', reqId: 'req-1', method: 'GET', url: '/ping', statusCode: 200, responseTime: expect.any(Number), msg: 'request completed' }]);
      expect(lines.find((l) => l.msg === 'handler.note')).toMatchObject({ reqId: 'req-1', apiKey: '[redacted]', nested: { token: '[redacted]' } });
      expect(JSON.stringify(lines).includes('pk_secret')).toBe(false);

      logger.level = 'warn';
      await fetch(`${url}/ping`);
      logger.level = 'info';
      await fetch(`${url}/ping`, { headers: { 'x-request-id': 'req-3' } });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(lines.filter((l) => l.msg === 'request completed').map((l) => l.reqId)).toEqual(['req-1', 'req-3']);
    } finally {
      await app.close();
    }
  });
});
