/**
 * The Ollama simulator: an in-process (or `parley sim`) stand-in for Ollama that speaks its HTTP
 * API byte for byte, with knobs for timing, queueing and faults. Types and defaults: sim-types.ts.
 * Token and prompt-count formulas: sim-tokens.ts. Reply and tool-call rules: sim-reply.ts.
 * Control endpoints (`/_sim/*`): sim-control.ts.
 */
export type { RecordedRequest, SimFaults, SimModel, SimOptions, SimRuntimeOptions, SimStats, Simulator } from './sim-types.js';
export { startSimulator } from './sim-server.js';
export { countTokens, simReplyText, chatPromptTokens, generatePromptTokens } from './sim-tokens.js';
export { toolCallId, placeIn } from './sim-reply.js';
export { registerSimCommand, parseModelList, type SimCommandIo } from './sim-command.js';
export { DEFAULT_MODELS, DEFAULT_REGISTRY } from './sim-models.js';
export { MID_STREAM_ERROR } from './sim-engine.js';
