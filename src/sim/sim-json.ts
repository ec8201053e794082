/**
 * Request-body binding the way Ollama's Go handlers do it (gin `ShouldBindJSON` into a struct):
 * Go's json error texts, the first JSON value only (trailing bytes ignored), type checks of the
 * known fields (values inside fields: sim-fields.ts).
 */

/** Result of parsing: a value, or Go's error text. `empty` means no value at all (io.EOF). */
export type ParseResult = { ok: true; value: unknown } | { ok: false; empty: boolean; error: string };

function quoteChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return "'\"'";
  const q = JSON.stringify(c);
  return "'" + q.slice(1, -1) + "'";
}

class GoSyntaxError extends Error {}

/** Finds the end of the first JSON value, throwing Go's syntax error text. */
function scanValue(s: string, start: number): number {
  let i = start;
  const ws = (): void => {
    while (i < s.length && ' \t\r\n'.includes(s[i] as string)) i++;
  };
  const eof = (): never => {
    throw new GoSyntaxError('unexpected EOF');
  };
  const bad = (ctx: string): never => {
    throw new GoSyntaxError(`invalid character ${quoteChar(s[i] as string)} ${ctx}`);
  };
  const value = (): void => {
    ws();
    if (i >= s.length) eof();
    const c = s[i] as string;
    if (c === '{') {
      i++;
      ws();
      if (i >= s.length) eof();
      if (s[i] === '}') return void i++;
      for (;;) {
        ws();
        if (i >= s.length) eof();
        if (s[i] !== '"') bad('looking for beginning of object key string');
        string();
        ws();
        if (i >= s.length) eof();
        if (s[i] !== ':') bad('after object key');
        i++;
        value();
        ws();
        if (i >= s.length) eof();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === '}') return void i++;
        bad('after object key:value pair');
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (i >= s.length) eof();
      if (s[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (i >= s.length) eof();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === ']') return void i++;
        bad('after array element');
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    for (const lit of ['true', 'false', 'null']) {
      if (c === lit[0]) {
        for (let k = 1; k < lit.length; k++) {
          i++;
          if (i >= s.length) eof();
          if (s[i] !== lit[k]) bad(`in literal ${lit} (expecting ${quoteChar(lit[k] as string)})`);
        }
        i++;
        return;
      }
    }
    bad('looking for beginning of value');
  };
  const string = (): void => {
    i++;
    for (;;) {
      if (i >= s.length) eof();
      const c = s[i] as string;
      if (c === '"') return void i++;
      if (c < ' ') bad('in string literal');
      if (c === '\\') {
        i++;
        if (i >= s.length) eof();
        const e = s[i] as string;
        if (e === 'u') {
          for (let k = 0; k < 4; k++) {
            i++;
            if (i >= s.length) eof();
            if (!/[0-9a-fA-F]/.test(s[i] as string)) bad('in \\u hexadecimal character escape');
          }
        } else if (!'"\\/bfnrt'.includes(e)) bad('in string escape code');
      }
      i++;
    }
  };
  const digits = (): number => {
    const from = i;
    while (i < s.length && (s[i] as string) >= '0' && (s[i] as string) <= '9') i++;
    return i - from;
  };
  const number = (): void => {
    if (s[i] === '-') {
      i++;
      if (i >= s.length) eof();
      if (!((s[i] as string) >= '0' && (s[i] as string) <= '9')) bad('in numeric literal');
    }
    if (s[i] === '0') i++;
    else digits();
    if (s[i] === '.') {
      i++;
      if (i >= s.length) eof();
      if (digits() === 0) bad('after decimal point in numeric literal');
    }
    if (s[i] === 'e' || s[i] === 'E') {
      i++;
      if (s[i] === '+' || s[i] === '-') i++;
      if (i >= s.length) eof();
      if (digits() === 0) bad('in exponent of numeric literal');
    }
  };
  value();
  return i;
}

/** Parses the first JSON value of a body like Go's json.Decoder. */
export function parseGoJson(text: string): ParseResult {
  if (text.trim() === '') return { ok: false, empty: true, error: 'EOF' };
  try {
    const end = scanValue(text, 0);
    return { ok: true, value: JSON.parse(text.slice(0, end)) };
  } catch (e) {
    if (e instanceof GoSyntaxError) return { ok: false, empty: false, error: e.message };
    return { ok: false, empty: false, error: e instanceof Error ? e.message : String(e) };
  }
}

/** Field kinds checked at bind time; the string is Go's type name in the error. */
type Kind = 'string' | 'bool' | 'int' | 'object' | 'array';
export interface FieldSpec {
  kind: Kind;
  goType: string;
  /** For arrays of structs: the element struct's name and fields. */
  elem?: { struct: string; fields: Record<string, FieldSpec> };
}

const S: FieldSpec = { kind: 'string', goType: 'string' };
const B: FieldSpec = { kind: 'bool', goType: 'bool' };
const I: FieldSpec = { kind: 'int', goType: 'int' };
const MAP: FieldSpec = { kind: 'object', goType: 'map[string]interface {}' };
const IMAGES: FieldSpec = { kind: 'array', goType: '[]api.ImageData' };
const MESSAGE = { struct: 'Message', fields: { role: S, content: S, thinking: S, tool_name: S, tool_call_id: S, images: IMAGES } };

/** Known fields per Go request struct. */
export const REQUEST_STRUCTS: Record<string, Record<string, FieldSpec>> = {
  ChatRequest: { model: S, messages: { kind: 'array', goType: '[]api.Message', elem: MESSAGE }, stream: B, options: MAP, tools: { kind: 'array', goType: 'api.Tools' }, truncate: B, shift: B },
  GenerateRequest: { model: S, prompt: S, suffix: S, system: S, template: S, context: { kind: 'array', goType: '[]int' }, stream: B, raw: B, images: IMAGES, options: MAP, truncate: B },
  EmbedRequest: { model: S, truncate: B, dimensions: I, options: MAP },
  EmbeddingRequest: { model: S, prompt: S, options: MAP },
  PullRequest: { model: S, name: S, insecure: B, stream: B },
  PushRequest: { model: S, name: S, insecure: B, stream: B },
  DeleteRequest: { model: S, name: S },
  CopyRequest: { source: S, destination: S },
  ShowRequest: { model: S, name: S, system: S, verbose: B, options: MAP },
  CreateRequest: { model: S, name: S, from: S, stream: B, system: S, template: S, quantize: S, files: MAP, parameters: MAP },
  ChatCompletionRequest: { model: S, stream: B, messages: { kind: 'array', goType: '[]openai.Message' }, max_tokens: I },
};

/** Go's name for a JSON value's kind in unmarshal errors. */
export function jsonKind(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'array';
  return 'object';
}

function fits(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'bool':
      return typeof v === 'boolean';
    case 'int':
      return typeof v === 'number' && Number.isInteger(v);
    case 'object':
      return typeof v === 'object' && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
  }
}

function checkFields(struct: string, fields: Record<string, FieldSpec>, obj: Record<string, unknown>, path: string): string | undefined {
  for (const [name, spec] of Object.entries(fields)) {
    const v = obj[name];
    if (v === undefined || v === null) continue;
    const field = path ? `${path}.${name}` : name;
    if (!fits(spec.kind, v)) {
      const shown = spec.kind === 'int' && typeof v === 'number' ? `number ${v}` : jsonKind(v);
      return `json: cannot unmarshal ${shown} into Go struct field ${struct}.${field} of type ${spec.goType}`;
    }
    if (spec.elem && Array.isArray(v)) {
      for (const el of v) {
        if (el === null) continue;
        if (typeof el !== 'object' || Array.isArray(el)) {
          return `json: cannot unmarshal ${jsonKind(el)} into Go struct field ${struct}.${field} of type api.${spec.elem.struct}`;
        }
        const err = checkFields(spec.elem.struct, spec.elem.fields, el as Record<string, unknown>, field);
        if (err) return err;
      }
    }
  }
  return undefined;
}

/**
 * Binds a body to a Go request struct: returns the object or Go's error text.
 * `null` binds to an empty request, like Go.
 */
export function bindStruct(struct: string, value: unknown): { body: Record<string, unknown> } | { error: string } {
  if (value === null) return { body: {} };
  if (typeof value !== 'object' || Array.isArray(value)) {
    const pkg = struct === 'ChatCompletionRequest' ? 'openai' : 'api';
    return { error: `json: cannot unmarshal ${jsonKind(value)} into Go value of type ${pkg}.${struct}` };
  }
  const body = value as Record<string, unknown>;
  const err = checkFields(struct, REQUEST_STRUCTS[struct] ?? {}, body, '');
  return err ? { error: err } : { body };
}
