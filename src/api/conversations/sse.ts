import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ReplyEvent, ReplyRun } from '../../chat/reply-run.js';

/** Bytes that may wait for a slow SSE client before it is disconnected (it can resume). */
const SSE_MAX_BUFFERED_BYTES = 1024 * 1024;
/** Comment line sent this often so proxies keep an idle stream open, in ms. */
const KEEPALIVE_MS = 15_000;

/** One event in SSE framing: `id:`, `event:`, one `data:` line of JSON, blank line. */
export function sseFrame(e: ReplyEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

/**
 * Streams a reply's events after `afterSeq` as Server-Sent Events on this response, live until
 * the reply finishes (then the response ends). A client that disconnects only detaches: the reply
 * goes on (grace period, ReplyRun) and can be resumed with Last-Event-ID. A client that reads too
 * slowly (more than 1 MiB waiting) is disconnected the same way.
 * @throws ParleyError from `ReplyRun.attach` (bad or expired Last-Event-ID) before any byte is sent
 */
export function streamSse(request: FastifyRequest, reply: FastifyReply, run: ReplyRun, afterSeq: number, headers: Record<string, string> = {}): void {
  const res = reply.raw;
  let open = true;
  let detach: () => void = () => undefined;
  const pending: ReplyEvent[] = [];
  let attached = false;
  const write = (text: string): void => {
    if (!open) return;
    res.write(text);
    if (res.writableLength > SSE_MAX_BUFFERED_BYTES) {
      request.log.warn({ replyId: run.replyId, bufferedBytes: res.writableLength }, 'conversation.sse_client_too_slow');
      res.destroy();
    }
  };
  // Attach first (it may throw for a bad Last-Event-ID, which must still be a plain 400), but
  // hold the replayed events until the headers went out.
  detach = run.attach(afterSeq, {
    event: (e) => (attached ? write(sseFrame(e)) : pending.push(e)),
    end: () => {
      if (!attached) {
        pending.push(END);
        return;
      }
      open = false;
      res.end();
    },
  });
  reply.hijack();
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
    'X-Request-Id': request.id,
    'X-Parley-Reply-Id': run.replyId,
    ...headers,
  });
  attached = true;
  const keepalive = setInterval(() => write(': keepalive\n\n'), KEEPALIVE_MS);
  keepalive.unref();
  res.once('close', () => {
    open = false;
    clearInterval(keepalive);
    detach();
  });
  for (const e of pending.splice(0)) {
    if (e === END) {
      open = false;
      res.end();
      return;
    }
    write(sseFrame(e));
  }
}

/** Marks "the reply ended" among events replayed before the headers went out. */
const END: ReplyEvent = { id: '', seq: -1, type: 'done', data: {} };
