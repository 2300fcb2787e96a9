// The OpenAI request bodies this server accepts, checked field by field into the engine's terms.
// A wrong type or range is a 400 naming the parameter; unknown fields are ignored (as OpenAI and
// vLLM do); known features this server does not implement are refused rather than silently dropped.
import type { SamplingParams } from '../engine/sequence.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import { badRequest } from './errors.js';

export const MAX_LOGPROBS = 5;

type Body = Record<string, unknown>;

function present(body: Body, key: string): boolean {
  return body[key] !== undefined && body[key] !== null;
}

function num(body: Body, key: string, opts: { min?: number; max?: number; minExclusive?: boolean; integer?: boolean }): number | undefined {
  if (!present(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`'${key}' must be a number`, key);
  if (opts.integer && !Number.isInteger(v)) throw badRequest(`'${key}' must be an integer`, key);
  const { min, max } = opts;
  if (min !== undefined && (opts.minExclusive ? v <= min : v < min)) throw badRequest(`'${key}' must be ${opts.minExclusive ? '>' : '>='} ${min}, got ${v}`, key);
  if (max !== undefined && v > max) throw badRequest(`'${key}' must be <= ${max}, got ${v}`, key);
  return v;
}

function bool(body: Body, key: string): boolean | undefined {
  if (!present(body, key)) return undefined;
  if (typeof body[key] !== 'boolean') throw badRequest(`'${key}' must be a boolean`, key);
  return body[key] as boolean;
}

function str(body: Body, key: string): string | undefined {
  if (!present(body, key)) return undefined;
  if (typeof body[key] !== 'string') throw badRequest(`'${key}' must be a string`, key);
  return body[key] as string;
}

function isTokenIdArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x));
}

/** Fields of OpenAI's API that would change the output and that this server does not implement. */
function refuseUnsupported(body: Body): void {
  const n = num(body, 'n', { min: 1, integer: true });
  if (n !== undefined && n !== 1) throw badRequest("only 'n' = 1 is supported", 'n');
  const bestOf = num(body, 'best_of', { min: 1, integer: true });
  if (bestOf !== undefined && bestOf !== 1) throw badRequest("only 'best_of' = 1 is supported", 'best_of');
  for (const key of ['presence_penalty', 'frequency_penalty']) {
    const v = num(body, key, { min: -2, max: 2 });
    if (v !== undefined && v !== 0) throw badRequest(`'${key}' is not supported by this server`, key);
  }
  const rep = num(body, 'repetition_penalty', { min: 0, minExclusive: true });
  if (rep !== undefined && rep !== 1) throw badRequest("'repetition_penalty' is not supported by this server", 'repetition_penalty');
  if (present(body, 'logit_bias') && Object.keys(body['logit_bias'] as object).length > 0) {
    throw badRequest("'logit_bias' is not supported by this server", 'logit_bias');
  }
}

export interface StreamOptions {
  stream: boolean;
  includeUsage: boolean;
}

function streamOptions(body: Body): StreamOptions {
  const stream = bool(body, 'stream') ?? false;
  let includeUsage = false;
  if (present(body, 'stream_options')) {
    const so = body['stream_options'];
    if (typeof so !== 'object' || Array.isArray(so)) throw badRequest("'stream_options' must be an object", 'stream_options');
    if (!stream) throw badRequest("'stream_options' is only allowed with 'stream': true", 'stream_options');
    includeUsage = bool(so as Body, 'include_usage') ?? false;
  }
  return { stream, includeUsage };
}

/** Sampling fields shared by both endpoints; maxTokens is resolved by the caller (defaults differ). */
function sampling(body: Body, logprobs: number | undefined, maxTokens: number | undefined): Omit<SamplingParams, 'maxTokens'> & { maxTokens?: number } {
  const temperature = num(body, 'temperature', { min: 0, max: 2 }) ?? 1;
  const topP = num(body, 'top_p', { min: 0, max: 1, minExclusive: true }) ?? 1;
  const topK = num(body, 'top_k', { min: -1, integer: true }) ?? 0;
  const minP = num(body, 'min_p', { min: 0, max: 1 }) ?? 0;
  const seed = num(body, 'seed', { integer: true, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
  let stop: string[] = [];
  if (present(body, 'stop')) {
    const v = body['stop'];
    if (typeof v === 'string') stop = [v];
    else if (Array.isArray(v) && v.every((s) => typeof s === 'string')) stop = v as string[];
    else throw badRequest("'stop' must be a string or an array of strings", 'stop');
    if (stop.some((s) => s.length === 0)) throw badRequest("'stop' must hold non-empty strings", 'stop');
  }
  let stopTokenIds: number[] = [];
  if (present(body, 'stop_token_ids')) {
    if (!isTokenIdArray(body['stop_token_ids'])) throw badRequest("'stop_token_ids' must be an array of integers", 'stop_token_ids');
    stopTokenIds = body['stop_token_ids'];
  }
  return {
    temperature,
    topP,
    topK: topK === -1 ? 0 : topK,
    minP,
    seed,
    maxTokens,
    stop,
    stopTokenIds,
    ignoreEos: bool(body, 'ignore_eos') ?? false,
    logprobs,
  };
}

export type Prompt = { text: string } | { tokenIds: number[] };

export interface CompletionRequest {
  model?: string;
  prompt: Prompt;
  params: Omit<SamplingParams, 'maxTokens'> & { maxTokens: number };
  echo: boolean;
  returnTokensAsTokenIds: boolean;
  stream: StreamOptions;
}

/** vLLM and OpenAI default for /v1/completions. */
const DEFAULT_COMPLETION_MAX_TOKENS = 16;

export function parseCompletionRequest(body: Body): CompletionRequest {
  refuseUnsupported(body);
  const model = str(body, 'model');
  if (!present(body, 'prompt')) throw badRequest("'prompt' is required", 'prompt');
  let p = body['prompt'];
  // A one-element batch is the same as its element; larger batches go one request per prompt.
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let prompt: Prompt;
  if (typeof p === 'string') prompt = { text: p };
  else if (isTokenIdArray(p)) prompt = { tokenIds: p };
  else if (Array.isArray(p) && p.length > 1 && p.every((x) => typeof x === 'string' || Array.isArray(x))) {
    throw badRequest("'prompt' with several prompts is not supported; send one request per prompt", 'prompt');
  } else throw badRequest("'prompt' must be a string, an array of token ids, or a one-element array of either", 'prompt');
  if (('text' in prompt ? prompt.text.length : prompt.tokenIds.length) === 0) throw badRequest("'prompt' is empty", 'prompt');

  const logprobs = num(body, 'logprobs', { min: 0, max: MAX_LOGPROBS, integer: true });
  const echo = bool(body, 'echo') ?? false;
  if (echo && logprobs !== undefined) throw badRequest("'echo' with 'logprobs' is not supported (prompt log-probabilities are not computed)", 'echo');
  if (present(body, 'suffix') && str(body, 'suffix') !== '') throw badRequest("'suffix' is not supported by this server", 'suffix');
  const maxTokens = num(body, 'max_tokens', { min: 1, integer: true }) ?? DEFAULT_COMPLETION_MAX_TOKENS;
  return {
    model,
    prompt,
    params: { ...sampling(body, logprobs, maxTokens), maxTokens },
    echo,
    returnTokensAsTokenIds: bool(body, 'return_tokens_as_token_ids') ?? false,
    stream: streamOptions(body),
  };
}

export interface ChatRequest {
  model?: string;
  messages: ChatMessage[];
  /** Undefined: as many as the context allows (vLLM's default for chat). */
  maxTokens?: number;
  params: Omit<SamplingParams, 'maxTokens'>;
  /** Whether per-token logprobs are returned (top-N from params.logprobs). */
  logprobs: boolean;
  returnTokensAsTokenIds: boolean;
  stream: StreamOptions;
}

function messageContent(content: unknown, index: number): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  // Content parts: only text parts can go to a text-only model.
  if (Array.isArray(content)) {
    return content
      .map((part, j) => {
        if (part && typeof part === 'object' && (part as Body)['type'] === 'text' && typeof (part as Body)['text'] === 'string') {
          return (part as Body)['text'] as string;
        }
        throw badRequest(`messages[${index}].content[${j}]: only text content parts are supported`, 'messages');
      })
      .join('');
  }
  throw badRequest(`messages[${index}].content must be a string or an array of text parts`, 'messages');
}

export function parseChatRequest(body: Body): ChatRequest {
  refuseUnsupported(body);
  const model = str(body, 'model');
  const raw = body['messages'];
  if (!Array.isArray(raw) || raw.length === 0) throw badRequest("'messages' must be a non-empty array", 'messages');
  const messages = raw.map((m, i): ChatMessage => {
    if (!m || typeof m !== 'object' || Array.isArray(m)) throw badRequest(`messages[${i}] must be an object`, 'messages');
    const role = (m as Body)['role'];
    if (typeof role !== 'string' || role.length === 0) throw badRequest(`messages[${i}].role must be a string`, 'messages');
    return { role, content: messageContent((m as Body)['content'], i) };
  });
  const wantLogprobs = bool(body, 'logprobs') ?? false;
  const top = num(body, 'top_logprobs', { min: 0, max: MAX_LOGPROBS, integer: true });
  if (top !== undefined && !wantLogprobs) throw badRequest("'top_logprobs' requires 'logprobs': true", 'top_logprobs');
  const maxTokens = num(body, 'max_completion_tokens', { min: 1, integer: true }) ?? num(body, 'max_tokens', { min: 1, integer: true });
  const { maxTokens: _unused, ...params } = sampling(body, wantLogprobs ? (top ?? 0) : undefined, undefined);
  return {
    model,
    messages,
    maxTokens,
    params,
    logprobs: wantLogprobs,
    returnTokensAsTokenIds: bool(body, 'return_tokens_as_token_ids') ?? false,
    stream: streamOptions(body),
  };
}
