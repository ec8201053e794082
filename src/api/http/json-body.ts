import { ParleyError } from '../../errors/parley-error.js';

/**
 * Ollama-compatible request-body parsing. Ollama decodes bodies with Go's encoding/json, so its
 * 400 texts are Go's (reference §1 conventions, §3): an empty body is `missing request body`,
 * bad JSON `invalid character 'x' looking for beginning of value` or `unexpected EOF`, a wrong
 * type `json: cannot unmarshal number into Go struct field ChatRequest.model of type string`.
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
  if (text.trim() === '') throw new ParleyError('PARLEY_ERR_REQUEST_BODY_MISSING', 'missing request body');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ParleyError('PARLEY_ERR_REQUEST_BODY_INVALID_JSON', goJsonSyntaxMessage(text, e as Error));
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

function goJsonSyntaxMessage(text: string, e: Error): string {
  const m = /position (\d+)/.exec(e.message);
  const pos = m ? Number(m[1]) : -1;
  if (pos < 0 || pos >= text.length || /end of (JSON )?input|Unterminated/i.test(e.message)) return 'unexpected EOF';
  const ch = text[pos]!;
  const printable = ch === "'" ? "\\'" : ch;
  return `invalid character '${printable}' looking for beginning of value`;
}
