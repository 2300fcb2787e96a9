// Hands a request to the engine on behalf of an HTTP exchange: engine refusals become OpenAI errors,
// and the client going away (socket closed before the response ended) cancels the request.
import type { ServerResponse } from 'node:http';
import { RequestRejectedError, type GeneratedToken, type RequestOutput } from '../engine/engine.js';
import type { FinishReason, SamplingParams } from '../engine/sequence.js';
import { ApiError } from './errors.js';
import type { ServingContext } from './context.js';

export const RETRY_AFTER_SECONDS = 1;

export interface Admitted {
  outputs: AsyncGenerator<RequestOutput>;
  /** True once the client has gone away. */
  readonly disconnected: boolean;
}

export function admit(ctx: ServingContext, requestId: string, promptTokenIds: number[], params: SamplingParams, res: ServerResponse): Admitted {
  const controller = new AbortController();
  let outputs: AsyncGenerator<RequestOutput>;
  try {
    outputs = ctx.engine.generate({ requestId, promptTokenIds, params }, controller.signal);
  } catch (error) {
    throw toApiError(error);
  }
  ctx.tracing.admitted(requestId, params);
  const state = { disconnected: false };
  const onGone = (): void => {
    if (res.writableFinished || state.disconnected) return;
    state.disconnected = true;
    controller.abort();
    ctx.log('info', 'client disconnected; request cancelled', { request_id: requestId });
  };
  res.on('close', onGone);
  // Gone already (while the body was read or the prompt tokenized): 'close' will not come again.
  if (res.destroyed || res.socket?.destroyed) onGone();
  return {
    outputs,
    get disconnected() {
      return state.disconnected;
    },
  };
}

export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof RequestRejectedError) {
    switch (error.reason) {
      case 'invalid':
        return new ApiError(400, error.message, 'invalid_request_error', error.param ?? null);
      case 'overloaded':
        return new ApiError(429, error.message, 'rate_limit_error', null, 'queue_full', RETRY_AFTER_SECONDS);
      case 'closed':
        return new ApiError(503, error.message, 'service_unavailable_error', null, 'draining', RETRY_AFTER_SECONDS);
    }
  }
  return new ApiError(500, `internal error: ${(error as Error).message}`, 'server_error');
}

export interface CollectedCompletion {
  text: string;
  tokens: GeneratedToken[];
  finishReason?: FinishReason;
  stopReason?: string | number;
  promptTokens: number;
  completionTokens: number;
}

/**
 * Drains a non-streaming request's outputs into one result. Returns null when the client went away
 * (nothing is left to answer); a request the engine aborted while draining becomes a 503.
 */
export async function collectCompletion(admitted: Admitted, promptTokens: number, initialText = ''): Promise<CollectedCompletion | null> {
  const result: CollectedCompletion = { text: initialText, tokens: [], promptTokens, completionTokens: 0 };
  try {
    for await (const out of admitted.outputs) {
      result.text += out.text;
      result.tokens.push(...out.tokens);
      result.finishReason = out.finishReason;
      result.stopReason = out.stopReason;
      result.promptTokens = out.numPromptTokens;
      result.completionTokens = out.numOutputTokens;
    }
  } catch (error) {
    throw toApiError(error);
  }
  if (admitted.disconnected) return null;
  if (result.finishReason === 'abort') throw new ApiError(503, 'the request was cancelled (server shutting down)', 'service_unavailable_error', null, 'cancelled');
  return result;
}
