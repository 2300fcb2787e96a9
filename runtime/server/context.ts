// What request handlers need from the running server.
import type { Engine } from '../engine/engine.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import type { RequestTracing } from '../tracing/request-tracing.js';
import type { Logger } from './log.js';
import type { TokenNamer } from './logprobs-format.js';

export interface ServingContext {
  engine: Engine;
  tokenizer: TextTokenizer;
  servedModelName: string;
  maxModelLen: number;
  log: Logger;
  tracing: RequestTracing;
}

export function tokenNamer(ctx: ServingContext, asTokenIds: boolean): TokenNamer {
  return asTokenIds ? (id) => `token_id:${id}` : (id) => ctx.tokenizer.tokenString(id);
}
