/** One Server-Sent Event as a client parses it (the `data:` line parsed as JSON). */
export interface SseEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

/**
 * Reads a `text/event-stream` response body with the SSE framing rules (fields per line, events
 * end at a blank line, `:` comments ignored). Stops when the stream ends, or, when `stopWhen`
 * returns true for an event, cancels the body right after it (the client going away mid-reply).
 */
export async function readSse(res: Response, stopWhen?: (e: SseEvent, all: SseEvent[]) => boolean): Promise<SseEvent[]> {
  if (!res.body) throw new Error('no body');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  let current: { id: string; event: string; data: string[] } = { id: '', event: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl = buffer.indexOf('\n');
    while (nl !== -1) {
      const line = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf('\n');
      if (line === '') {
        if (current.data.length > 0) {
          const e: SseEvent = { id: current.id, event: current.event, data: JSON.parse(current.data.join('\n')) as Record<string, unknown> };
          events.push(e);
          if (stopWhen?.(e, events)) {
            await reader.cancel();
            return events;
          }
        }
        current = { id: '', event: 'message', data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') current.id = value;
      else if (field === 'event') current.event = value;
      else if (field === 'data') current.data.push(value);
    }
  }
  return events;
}

/** The text of the `token` events, joined. */
export function tokenText(events: SseEvent[]): string {
  return events.filter((e) => e.event === 'token').map((e) => (e.data.content as string | undefined) ?? '').join('');
}
