/**
 * Splits a byte stream into NDJSON lines. Chunks may cut lines (and UTF-8 sequences) anywhere;
 * bytes are kept until their newline arrives. `flush()` returns a last line without `\n`
 * (ollama-js also parses such a tail, reference §7.2).
 */
export class NdjsonLines {
  private tail: Buffer | undefined;

  /** Complete lines in `chunk` (plus any kept tail), without their `\n`; empty lines dropped. */
  push(chunk: Buffer): string[] {
    const data = this.tail ? Buffer.concat([this.tail, chunk]) : chunk;
    const lines: string[] = [];
    let start = 0;
    let nl = data.indexOf(10, start);
    while (nl !== -1) {
      if (nl > start) lines.push(data.toString('utf8', start, nl));
      start = nl + 1;
      nl = data.indexOf(10, start);
    }
    this.tail = start < data.length ? data.subarray(start) : undefined;
    return lines;
  }

  /** The unterminated last line, if any. */
  flush(): string | undefined {
    const t = this.tail;
    this.tail = undefined;
    const s = t?.toString('utf8').trim();
    return s ? s : undefined;
  }
}
