/**
 * Ollama model names: `[host/][namespace/]model[:tag]`, tag defaulting to `latest`, matched
 * case-insensitively (reference §1, conventions). `normalizeModelName('Llama3.2')` → `llama3.2:latest`.
 */
export function normalizeModelName(name: string): string {
  let normalized = normalizedNames.get(name);
  if (normalized === undefined) {
    normalized = normalize(name);
    // A handful of names in practice; the bound only stops a client sending endless new ones.
    if (normalizedNames.size >= MAX_REMEMBERED_NAMES) normalizedNames.clear();
    normalizedNames.set(name, normalized);
  }
  return normalized;
}

/** Names already normalized: the hot path asks for the same few on every request. */
const normalizedNames = new Map<string, string>();
const MAX_REMEMBERED_NAMES = 1024;

function normalize(name: string): string {
  const lower = name.trim().toLowerCase();
  const lastSlash = lower.lastIndexOf('/');
  const tail = lower.slice(lastSlash + 1);
  const withTag = tail.includes(':') ? lower : `${lower}:latest`;
  return withTag.replace(/^registry\.ollama\.ai\/library\//, '').replace(/^library\//, '');
}
