import { ParleyError } from '../../errors/parley-error.js';

/**
 * Ollama-compatible request-body parsing. Ollama decodes bodies with Go's encoding/json, so its
 * 400 texts are Go's (reference §1 conventions, §3): an empty body is `missing request body`,
 * bad JSON Go's scanner text (`invalid character 'm' looking for beginning of object key string`,
 * `unexpected EOF`, …), a wrong type
 * `json: cannot unmarshal number into Go struct field ChatRequest.model of type string`.
 * Like gin's json.Decoder, only the first JSON value counts: bytes after it are ignored.
 */
export type JsonObject = Record<string, unknown>;

/**
 * Parses a raw body into a JSON object.
 * @param goType Go type name used in the message for a non-object body, e.g. `api.ChatRequest`.
 * @throws ParleyError PARLEY_ERR_REQUEST_BODY_MISSING, PARLEY_ERR_REQUEST_BODY_INVALID_JSON, PARLEY_ERR_REQUEST_FIELD_TYPE
 */
export function parseJsonObject(raw: unknown, goType: string): JsonObject {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' ? raw : raw === undefined || raw === null ? '' : undefined;
  if (text === undefined) throw new ParleyError('PARLEY_ERR_INTERNAL', 'request body was not read as bytes');
  if (/^[ \t\r\n]*$/.test(text)) throw new ParleyError('PARLEY_ERR_REQUEST_BODY_MISSING', 'missing request body');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Either trailing bytes after a valid first value (Go's Decoder ignores them) or a syntax error.
    const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(text, 'utf8');
    const scanned = scanFirstValue(bytes);
    if (typeof scanned === 'string') throw new ParleyError('PARLEY_ERR_REQUEST_BODY_INVALID_JSON', scanned);
    value = JSON.parse(bytes.toString('utf8', 0, scanned));
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ParleyError('PARLEY_ERR_REQUEST_FIELD_TYPE', `json: cannot unmarshal ${jsonTypeName(value)} into Go value of type ${goType}`);
  }
  return value as JsonObject;
}

export type FieldKind = 'string' | 'bool' | 'number' | 'array' | 'object';

/**
 * Checks the JSON type of one field the way Go would when decoding into a struct; null and
 * absent values pass (Go leaves the field at its zero value).
 * @param struct Go struct name for the message, e.g. `ChatRequest`
 * @param goType Go type for the message, e.g. `string`, `[]api.Message`
 * @throws ParleyError PARLEY_ERR_REQUEST_FIELD_TYPE
 */
export function checkFieldType(body: JsonObject, field: string, kind: FieldKind, struct: string, goType: string): void {
  const v = body[field];
  if (v === undefined || v === null) return;
  if (jsonTypeName(v) !== kind) {
    throw new ParleyError('PARLEY_ERR_REQUEST_FIELD_TYPE', `json: cannot unmarshal ${jsonTypeName(v)} into Go struct field ${struct}.${field} of type ${goType}`);
  }
}

export function jsonTypeName(v: unknown): FieldKind | 'null' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'number':
      return 'number';
    default:
      return 'object';
  }
}

const GO_ESCAPES: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 0x5c: '\\\\' };

/** Go's `quoteChar(c byte)` from encoding/json's scanner: the byte as a quoted rune. */
function goQuoteByte(c: number): string {
  if (c === 0x27) return "'\\''";
  if (c === 0x22) return `'"'`;
  const hex = c.toString(16).padStart(2, '0');
  const named = GO_ESCAPES[c];
  if (named !== undefined) return `'${named}'`;
  if (c < 0x20 || c === 0x7f) return `'\\x${hex}'`;
  if ((c >= 0x80 && c <= 0xa0) || c === 0xad) return `'\\u00${hex}'`;
  return `'${String.fromCharCode(c)}'`;
}

class GoSyntaxError extends Error {}

/**
 * Scans the first JSON value of `b` the way Go's encoding/json scanner does (on bytes) and
 * returns the offset just past it, or Go's error text for the first bad byte
 * (`invalid character 'x' <context>`, or `unexpected EOF` when the input ends inside the value).
 */
function scanFirstValue(b: Uint8Array): number | string {
  let i = 0;
  const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;
  const ws = (): void => {
    while (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d) i++;
  };
  /** The byte at i, or a throw of `unexpected EOF`. */
  const at = (): number => {
    if (i >= b.length) throw new GoSyntaxError('unexpected EOF');
    return b[i]!;
  };
  const bad = (context: string): never => {
    throw new GoSyntaxError(`invalid character ${goQuoteByte(b[i]!)} ${context}`);
  };
  const string = (): void => {
    i++; // opening quote
    for (let c = at(); c !== 0x22; c = at()) {
      if (c < 0x20) bad('in string literal');
      if (c === 0x5c) {
        i++;
        const e = at();
        if (e === 0x75) {
          for (let k = 0; k < 4; k++) {
            i++;
            if (!/[0-9a-fA-F]/.test(String.fromCharCode(at()))) bad('in \\u hexadecimal character escape');
          }
        } else if (!'"\\/bfnrt'.includes(String.fromCharCode(e))) bad('in string escape code');
      }
      i++;
    }
    i++; // closing quote
  };
  const digits = (): void => {
    while (isDigit(b[i])) i++;
  };
  const number = (): void => {
    if (b[i] === 0x2d) {
      i++;
      if (!isDigit(at())) bad('in numeric literal');
    }
    if (b[i] === 0x30) i++;
    else digits();
    if (b[i] === 0x2e) {
      i++;
      if (!isDigit(at())) bad('after decimal point in numeric literal');
      digits();
    }
    if (b[i] === 0x65 || b[i] === 0x45) {
      i++;
      if (at() === 0x2b || b[i] === 0x2d) i++;
      if (!isDigit(at())) bad('in exponent of numeric literal');
      digits();
    }
  };
  const literal = (word: string): void => {
    for (let k = 1; k < word.length; k++) {
      i++;
      if (at() !== word.charCodeAt(k)) bad(`in literal ${word} (expecting ${goQuoteByte(word.charCodeAt(k))})`);
    }
    i++;
  };
  const value = (): void => {
    ws();
    const c = at();
    if (c === 0x7b) {
      i++;
      ws();
      if (at() === 0x7d) return void i++;
      for (;;) {
        if (at() !== 0x22) bad('looking for beginning of object key string');
        string();
        ws();
        if (at() !== 0x3a) bad('after object key');
        i++;
        value();
        ws();
        if (at() === 0x7d) return void i++;
        if (b[i] !== 0x2c) bad('after object key:value pair');
        i++;
        ws();
      }
    }
    if (c === 0x5b) {
      i++;
      ws();
      if (at() === 0x5d) return void i++;
      for (;;) {
        value();
        ws();
        if (at() === 0x5d) return void i++;
        if (b[i] !== 0x2c) bad('after array element');
        i++;
      }
    }
    if (c === 0x22) return string();
    if (c === 0x2d || isDigit(c)) return number();
    if (c === 0x74) return literal('true');
    if (c === 0x66) return literal('false');
    if (c === 0x6e) return literal('null');
    bad('looking for beginning of value');
  };
  try {
    value();
    return i;
  } catch (e) {
    if (e instanceof GoSyntaxError) return e.message;
    throw e;
  }
}
