import type { SimContext } from './sim-context.js';
import { handleEmbed, handleEmbeddings } from './sim-embed.js';
import { handleChat, handleGenerate } from './sim-generate.js';
import {
  handleBlobHead,
  handleBlobPost,
  handleCopy,
  handleCreate,
  handleDelete,
  handlePs,
  handlePull,
  handlePush,
  handleShow,
  handleTags,
} from './sim-manage.js';
import { handleChatCompletions, handleModel, handleModels } from './sim-openai.js';
import type { Exchange } from './sim-wire.js';

/**
 * The route table, like Ollama's gin router (reference §1): each path with its methods. A
 * `struct` route gets its JSON body read and bound (Go json errors) before the handler runs;
 * other routes get no body (blob uploads read their own body as a stream).
 */

type Body = Record<string, unknown>;

/** How a route handles a request. */
export interface RouteHandler {
  /** Go request struct to bind the JSON body to (see sim-json REQUEST_STRUCTS); none = body not read. */
  struct?: string;
  run: (ex: Exchange, ctx: SimContext, body: Body, param: string) => void | Promise<void>;
}

export interface Route {
  /** Exact path, or a pattern whose first group is the `param`. */
  path: string | RegExp;
  methods: Record<string, RouteHandler>;
  /** `openai` routes render errors in OpenAI's shape. */
  style?: 'openai';
}

const root: RouteHandler = { run: (ex) => ex.send(200, 'text/plain; charset=utf-8', 'Ollama is running') };
const version: RouteHandler = { run: (ex, ctx) => ex.json(200, { version: ctx.settings.version }) };
const tags: RouteHandler = { run: (ex, ctx) => handleTags(ex, ctx) };

const post = (struct: string, run: RouteHandler['run']): Record<string, RouteHandler> => ({ POST: { struct, run } });

export const ROUTES: Route[] = [
  { path: '/', methods: { GET: root, HEAD: root } },
  { path: '/api/version', methods: { GET: version, HEAD: version } },
  { path: '/api/tags', methods: { GET: tags, HEAD: tags } },
  { path: '/api/ps', methods: { GET: { run: (ex, ctx) => handlePs(ex, ctx) } } },
  { path: '/api/generate', methods: post('GenerateRequest', handleGenerate) },
  { path: '/api/chat', methods: post('ChatRequest', handleChat) },
  { path: '/api/embed', methods: post('EmbedRequest', handleEmbed) },
  { path: '/api/embeddings', methods: post('EmbeddingRequest', handleEmbeddings) },
  { path: '/api/show', methods: post('ShowRequest', handleShow) },
  { path: '/api/pull', methods: post('PullRequest', handlePull) },
  { path: '/api/push', methods: post('PushRequest', handlePush) },
  { path: '/api/create', methods: post('CreateRequest', handleCreate) },
  { path: '/api/copy', methods: post('CopyRequest', handleCopy) },
  { path: '/api/delete', methods: { DELETE: { struct: 'DeleteRequest', run: handleDelete } } },
  {
    path: /^\/api\/blobs\/([^/]+)$/,
    methods: {
      HEAD: { run: (ex, ctx, _b, digest) => handleBlobHead(ex, ctx, digest) },
      POST: { run: (ex, ctx, _b, digest) => handleBlobPost(ex, ctx, digest) },
    },
  },
  { path: '/v1/chat/completions', methods: post('ChatCompletionRequest', handleChatCompletions), style: 'openai' },
  { path: '/v1/models', methods: { GET: { run: (ex, ctx) => handleModels(ex, ctx) } }, style: 'openai' },
  { path: /^\/v1\/models\/([^/]+)$/, methods: { GET: { run: (ex, ctx, _b, name) => handleModel(ex, ctx, decodeURIComponent(name)) } }, style: 'openai' },
];

/** The route for a path and its parameter, if any. */
export function matchRoute(path: string): { route: Route; param: string } | undefined {
  for (const route of ROUTES) {
    if (typeof route.path === 'string') {
      if (route.path === path) return { route, param: '' };
    } else {
      const m = route.path.exec(path);
      if (m) return { route, param: m[1] ?? '' };
    }
  }
  return undefined;
}
