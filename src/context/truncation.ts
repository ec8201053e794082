/**
 * Fitting a conversation into a model's context window: a pure function, no I/O.
 *
 * Rules (issue 4): system messages are always kept; the incoming (new) messages always go; then
 * the most recent turns that fit, whole turns only (a turn starts at a user message, so a reply
 * or a tool result never goes without what it answers), never half a message. When history was
 * left out and a summary exists, the summary is sent as well if it fits.
 */

/** Anything with a role and a token count. */
export interface Counted {
  role: string;
  /** Prompt tokens of the message (exact or estimated), integer ≥ 0. */
  tokens: number;
}

export interface FitInput<T extends Counted> {
  /** Stored history, oldest first. */
  history: T[];
  /** The new messages of this turn; always sent. */
  incoming: Counted[];
  /** Tokens of the running summary as a system message, or null when there is none. */
  summaryTokens: number | null;
  /** The model's context window, in tokens. */
  windowTokens: number;
  /** Tokens kept free for the reply. */
  reserveTokens: number;
}

export type FitResult<T extends Counted> =
  | {
      fits: true;
      /** History messages to send, in their original order. */
      kept: T[];
      /** History messages left out, in order (never system messages). */
      dropped: T[];
      /** User turns among the dropped messages. */
      droppedTurns: number;
      /** True when the summary is to be sent (only when something was dropped). */
      summary: boolean;
      /** Prompt tokens of what is sent: kept + summary + incoming. */
      promptTokens: number;
    }
  | {
      fits: false;
      /** Tokens of the system messages plus the incoming messages. */
      requiredTokens: number;
      /** Window minus the reply reserve. */
      availableTokens: number;
    };

/**
 * Chooses what history to send. `fits:false` when even the system messages plus the incoming
 * messages exceed `windowTokens - reserveTokens` (the caller answers 400 naming both numbers).
 */
export function fitToWindow<T extends Counted>(input: FitInput<T>): FitResult<T> {
  const available = input.windowTokens - input.reserveTokens;
  const sum = (xs: Counted[]): number => xs.reduce((n, m) => n + m.tokens, 0);
  const system = input.history.filter((m) => m.role === 'system');
  const rest = input.history.filter((m) => m.role !== 'system');
  const fixed = sum(system) + sum(input.incoming);
  if (fixed > available) return { fits: false, requiredTokens: fixed, availableTokens: Math.max(0, available) };

  const restTokens = sum(rest);
  if (fixed + restTokens <= available) {
    return { fits: true, kept: input.history.slice(), dropped: [], droppedTurns: 0, summary: false, promptTokens: fixed + restTokens };
  }
  const summaryTokens = input.summaryTokens !== null && fixed + input.summaryTokens <= available ? input.summaryTokens : 0;
  // suffix[i] = tokens of rest[i..]; the first turn boundary whose suffix fits wins.
  let suffix = restTokens;
  let start = rest.length;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i]!.role === 'user' && fixed + summaryTokens + suffix <= available) {
      start = i;
      break;
    }
    suffix -= rest[i]!.tokens;
  }
  if (start === rest.length) suffix = 0;
  const keptRest = new Set(rest.slice(start));
  const dropped = rest.slice(0, start);
  return {
    fits: true,
    kept: input.history.filter((m) => m.role === 'system' || keptRest.has(m)),
    dropped,
    droppedTurns: dropped.filter((m) => m.role === 'user').length,
    summary: summaryTokens > 0,
    promptTokens: fixed + summaryTokens + suffix,
  };
}

/** Tokens kept free for the reply: `options.num_predict` when it is a positive integer, else the configured reserve. */
export function replyReserve(options: unknown, configuredTokens: number): number {
  const n = options !== null && typeof options === 'object' ? (options as Record<string, unknown>).num_predict : undefined;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.ceil(n) : configuredTokens;
}
