/**
 * Ollama model names: `[host/][namespace/]model[:tag]`, tag defaulting to `latest`, matched
 * case-insensitively (reference §1, conventions). `normalizeModelName('Llama3.2')` → `llama3.2:latest`.
 */
export function normalizeModelName(name: string): string {
  const lower = name.trim().toLowerCase();
  const lastSlash = lower.lastIndexOf('/');
  const tail = lower.slice(lastSlash + 1);
  const withTag = tail.includes(':') ? lower : `${lower}:latest`;
  return withTag.replace(/^registry\.ollama\.ai\/library\//, '').replace(/^library\//, '');
}
