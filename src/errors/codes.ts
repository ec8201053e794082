/**
 * The one registry of Parley's error codes. Every error Parley answers with has a code here,
 * an HTTP status and whether a client may retry it. `docs/errors.md` is kept equal to this
 * table by a test (`src/errors/codes.test.ts`).
 *
 * Texts that Ollama itself sends (reference: ../shared/reference/ollama-api.md §3) are reproduced
 * byte for byte where a stock client could notice, e.g. the 503 queue-full text with two spaces.
 */
export interface ErrorCodeSpec {
  /** HTTP status the error is answered with before the first byte of a response. */
  readonly status: number;
  /** True when the same request may succeed later unchanged. */
  readonly retryable: boolean;
  /** One-line meaning, for docs/errors.md. */
  readonly description: string;
}

export const ERROR_CODES = {
  // request shape (Ollama §3)
  PARLEY_ERR_REQUEST_BODY_MISSING: { status: 400, retryable: false, description: 'The request body is empty (Ollama: "missing request body").' },
  PARLEY_ERR_REQUEST_BODY_INVALID_JSON: { status: 400, retryable: false, description: 'The body is not valid JSON; the text follows Go encoding/json.' },
  PARLEY_ERR_REQUEST_FIELD_TYPE: { status: 400, retryable: false, description: 'A known field has the wrong JSON type; the text follows Go encoding/json.' },
  PARLEY_ERR_REQUEST_INVALID: { status: 400, retryable: false, description: 'A field has an invalid value (the message names the field).' },
  PARLEY_ERR_REQUEST_BODY_TOO_LARGE: { status: 413, retryable: false, description: 'The body exceeds the configured bodyLimitBytes.' },
  PARLEY_ERR_REQUEST_MODEL_REQUIRED: { status: 400, retryable: false, description: '/api/chat without a model (Ollama: "model is required").' },
  PARLEY_ERR_REQUEST_NOT_FOUND: { status: 404, retryable: false, description: 'Unknown path (Ollama: plain text "404 page not found").' },
  PARLEY_ERR_REQUEST_METHOD_NOT_ALLOWED: { status: 405, retryable: false, description: 'Known path, wrong method (Ollama: plain text "405 method not allowed").' },
  // models
  PARLEY_ERR_MODEL_NOT_FOUND: { status: 404, retryable: false, description: 'No upstream serves the model (text as Ollama words it for the endpoint).' },
  // sessions
  PARLEY_ERR_SESSION_INVALID_ID: { status: 400, retryable: false, description: 'A session id that is not 1-128 characters of [A-Za-z0-9._:-].' },
  PARLEY_ERR_SESSION_NOT_FOUND: { status: 404, retryable: false, description: 'GET /api/sessions/:id for an id Parley never stored; with API keys also a session of another key, on GET and when /api/chat continues it (the same answer, so ids do not leak).' },
  // conversations API (REST, SSE, WebSocket)
  PARLEY_ERR_CONVERSATION_NOT_FOUND: { status: 404, retryable: false, description: 'No conversation (session) has this id, or (with API keys) it belongs to another key.' },
  PARLEY_ERR_CONVERSATION_DELETED: { status: 410, retryable: false, description: 'The conversation was deleted (soft): on the conversations API, on /api/chat with its session id and on GET /api/sessions/:id; POST /api/conversations/:id/restore brings it back.' },
  PARLEY_ERR_CONVERSATION_INVALID_CURSOR: { status: 400, retryable: false, description: 'A `cursor` query parameter that this list did not hand out.' },
  PARLEY_ERR_CONVERSATION_INVALID_LIMIT: { status: 400, retryable: false, description: 'A `limit` (page size) that is not an integer within the documented range.' },
  PARLEY_ERR_CONVERSATION_INVALID_EVENT_ID: { status: 400, retryable: false, description: 'A Last-Event-ID that does not belong to a reply of this conversation (or to one finished longer ago than conversations.replyRetentionMs), or lies beyond its last event.' },
  PARLEY_ERR_CONVERSATION_EVENTS_EXPIRED: { status: 410, retryable: false, description: 'Resuming from an event the reply buffer no longer holds (more than conversations.replyBufferMaxEvents events since); read the stored message instead.' },
  PARLEY_ERR_CONVERSATION_MESSAGE_TOO_LARGE: { status: 413, retryable: false, description: 'User content (a message or a title) over conversations.maxMessageBytes; the text gives the limit.' },
  PARLEY_ERR_CONVERSATION_BUSY: { status: 409, retryable: true, description: 'A reply is already running in this conversation; wait for it or cancel it.' },
  PARLEY_ERR_CONVERSATION_NO_REPLY: { status: 404, retryable: false, description: 'No reply is running in this conversation (cancel, or events without Last-Event-ID).' },
  PARLEY_ERR_CONVERSATION_REPLY_CANCELLED: { status: 499, retryable: false, description: 'The reply was cancelled (by the client, or nobody reconnected within conversations.reconnectGraceMs); what arrived is stored incomplete.' },
  // queue
  PARLEY_ERR_QUEUE_FULL: { status: 503, retryable: true, description: 'The upstream\'s admission queue holds maxDepth requests (Ollama\'s exact "server busy" text).' },
  PARLEY_ERR_QUEUE_WAIT_TIMEOUT: { status: 503, retryable: true, description: 'The request waited longer than queue.maxWaitMs for a slot.' },
  PARLEY_ERR_QUEUE_CANCELLED: { status: 499, retryable: false, description: 'The client went away while queued (Ollama: "request canceled").' },
  PARLEY_ERR_SHUTTING_DOWN: { status: 503, retryable: true, description: 'Parley is draining for shutdown and takes no new model requests.' },
  // upstream
  PARLEY_ERR_UPSTREAM_UNAVAILABLE: { status: 502, retryable: true, description: 'No upstream Ollama could be reached (connection refused, reset, DNS). Retried; when no upstream is left the client gets the degraded answer (PARLEY_ERR_DEGRADED_UNAVAILABLE, 503) quoting this text; the code is in the logs and parley_upstream_failures_total.' },
  PARLEY_ERR_UPSTREAM_STREAM_BROKEN: { status: 502, retryable: true, description: 'The upstream connection failed after the reply started; sent as a final {"error"} line.' },
  PARLEY_ERR_UPSTREAM_INCOMPLETE: { status: 502, retryable: true, description: 'The upstream stream ended without done:true.' },
  PARLEY_ERR_UPSTREAM_REJECTED: { status: 500, retryable: false, description: 'The upstream answered with an error; its status and text are relayed unchanged.' },
  PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, retryable: true, description: 'No TCP connection to the upstream within upstream.connectTimeoutMs. Retried; when no upstream is left the client gets the degraded answer (503) quoting "did not accept a connection in time"; counted in parley_upstream_timeouts_total{kind="connect"}.' },
  PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT: { status: 504, retryable: true, description: 'The upstream sent no response within upstream.headersTimeoutMs (covers a cold model load). Retried; when no upstream is left the client gets the degraded answer (503) quoting "did not start answering in time"; counted in parley_upstream_timeouts_total{kind="first_byte"}.' },
  PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT: { status: 504, retryable: true, description: 'The upstream went silent mid-reply for longer than upstream.bodyTimeoutMs; sent as a final {"error"} line.' },
  PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN: { status: 503, retryable: true, description: 'The upstream\'s circuit breaker is open after consecutive failures; requests go elsewhere or are refused at once.' },
  // resilience
  PARLEY_ERR_DEGRADED_UNAVAILABLE: { status: 503, retryable: true, description: 'Degraded mode "error" (default): no upstream can serve the model (refused, timed out, breakers open, retries used up); 503 {"error":"Ollama is unavailable right now (…)…"} with Retry-After and X-Parley-Degraded: error.' },
  PARLEY_ERR_OVERLOADED: { status: 503, retryable: true, description: 'The memory guardian is shedding load (process memory above memory.shedAboveRssBytes); running requests finish.' },
  PARLEY_ERR_STREAM_CLIENT_TOO_SLOW: { status: 503, retryable: true, description: 'The client read too slowly: more than memory.streamBufferMaxBytes waited for it, so it was cut off and the upstream aborted.' },
  PARLEY_ERR_SESSION_TOO_LARGE: { status: 413, retryable: false, description: 'The session\'s stored history is over memory.sessionMaxMessages or memory.sessionMaxBytes; start a new session.' },
  // users: API keys, budgets, rate limits (issue 6)
  PARLEY_ERR_AUTH_REQUIRED: { status: 401, retryable: false, description: 'auth.mode is required (or keys exist) and the request carries no `Authorization: Bearer <key>`.' },
  PARLEY_ERR_AUTH_INVALID_KEY: { status: 401, retryable: false, description: 'The bearer key is unknown or revoked.' },
  PARLEY_ERR_AUTH_FORBIDDEN: { status: 403, retryable: false, description: 'A valid key that is not an admin key (nor PARLEY_ADMIN_TOKEN) asked for /admin.' },
  PARLEY_ERR_USAGE_BUDGET_EXCEEDED: { status: 429, retryable: true, description: 'The key\'s daily token budget cannot fit this request (prompt estimate + reply reservation); the text gives used / budget and the reset time (next UTC midnight), Retry-After the seconds until then.' },
  PARLEY_ERR_USAGE_RATE_LIMITED: { status: 429, retryable: true, description: 'The key\'s requests-per-minute or tokens-per-minute bucket is empty; Retry-After and X-RateLimit-* say when it refills.' },
  PARLEY_ERR_USAGE_TOO_MANY_QUEUED: { status: 429, retryable: true, description: 'The key already has its tier\'s maxQueued requests waiting on this upstream.' },
  PARLEY_ERR_QUEUE_DRAINING: { status: 503, retryable: true, description: 'An operator is draining the queue (/admin/queue/drain): queued requests run, new ones are refused until resume.' },
  PARLEY_ERR_QUEUE_CLEARED: { status: 503, retryable: true, description: 'An operator cleared the queue or cancelled this request (/admin/queue) while it waited.' },
  PARLEY_ERR_ADMIN_NOT_FOUND: { status: 404, retryable: false, description: 'An /admin resource (key, queued request, session, model) that does not exist.' },
  // context window (issue 4)
  PARLEY_ERR_CONTEXT_TOO_LONG: { status: 400, retryable: false, description: 'The system prompt plus the new message (plus the reply reserve) do not fit the model\'s context window even with all history left out; the text names both token counts.' },
  // storage
  PARLEY_ERR_STORAGE_UNAVAILABLE: { status: 503, retryable: true, description: 'The database could not be written or read ("database unavailable: <operation> failed"). A session turn whose first write fails gets it before any reply byte and nothing of the turn is stored; one whose completion cannot be written (after retries) ends with a final {"error"} line and no done:true (stream:false: this 503) and stays incomplete.' },
  // anything else
  PARLEY_ERR_INTERNAL: { status: 500, retryable: false, description: 'A bug in Parley; the log line with the same request id has the details.' },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Ollama's exact text for a full scheduler queue (two spaces after the period). */
export const OLLAMA_SERVER_BUSY_TEXT = 'server busy, please try again.  maximum pending requests exceeded';
