import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readChunks, STOP_READING } from './upstream-body.js';

/** A body that gives `parts` one per read, then ends (or fails with `error`). */
function body(parts: string[], error?: Error): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i < parts.length) this.push(Buffer.from(parts[i++]!));
      else if (error) this.destroy(error);
      else this.push(null);
    },
  });
}

describe('readChunks', () => {
  it('hands over every chunk in order and resolves once the body ended', async () => {
    const seen: string[] = [];
    await readChunks(body(['a', 'b', 'c']), (chunk) => void seen.push(chunk.toString()));
    expect(seen).toEqual(['a', 'b', 'c']);
  });

  it('waits for a returned promise before the next chunk (backpressure), and for the last one before resolving', async () => {
    const events: string[] = [];
    let release!: () => void;
    const done = readChunks(body(['a', 'b']), (chunk) => {
      events.push(`chunk ${chunk.toString()}`);
      if (chunk.toString() !== 'a') return new Promise<void>((resolve) => (release = () => (events.push('released'), resolve())));
      return new Promise<void>((resolve) => setTimeout(() => (events.push('slow a done'), resolve()), 30));
    });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(events).toEqual(['chunk a', 'slow a done', 'chunk b']);
    let resolved = false;
    void done.then(() => (resolved = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(resolved).toBe(false);
    release();
    await done;
    expect(events.at(-1)).toBe('released');
  });

  it('stops at STOP_READING, sync or from the promise: the rest of the body is read to its end and dropped', async () => {
    for (const stopAsync of [false, true]) {
      const b = body(['a', 'b', 'c', 'd']);
      // 'end' comes before 'close' when the body is read to its end; a destroyed body only closes.
      const outcome = new Promise((resolve) => (b.once('end', () => resolve('ended')), b.once('close', () => resolve('closed without its end'))));
      const seen: string[] = [];
      await readChunks(b, (chunk) => {
        seen.push(chunk.toString());
        if (chunk.toString() !== 'b') return undefined;
        return stopAsync ? Promise.resolve(STOP_READING) : STOP_READING;
      });
      expect(seen).toEqual(['a', 'b']);
      expect(await outcome).toBe('ended');
    }
  });

  it('cuts off a body that sends more than 64 KiB after STOP_READING', async () => {
    const b = body(['done', 'x'.repeat(40_000), 'x'.repeat(40_000), 'never read']);
    const closed = new Promise((resolve) => b.once('close', resolve));
    await readChunks(b, () => STOP_READING);
    await closed;
    expect(b.destroyed).toBe(true);
    expect(b.readableEnded).toBe(false);
  });

  it("rejects with the body's error", async () => {
    const broken = new Error('connection reset');
    const seen: string[] = [];
    await expect(readChunks(body(['a'], broken), (chunk) => void seen.push(chunk.toString()))).rejects.toBe(broken);
    expect(seen).toEqual(['a']);
  });

  it('rejects with what the handler threw or its promise rejected with, and destroys the body', async () => {
    for (const fail of [
      () => {
        throw new Error('handler failed');
      },
      () => Promise.reject(new Error('handler failed')),
    ]) {
      const b = body(['a', 'b']);
      await expect(readChunks(b, fail)).rejects.toThrow('handler failed');
      expect(b.destroyed).toBe(true);
    }
  });
});
