// POST /v1/chat/completions: the checkpoint's chat template turns messages into the prompt.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { GeneratedToken } from '../engine/engine.js';
import { admit, collectCompletion, toApiError } from './admission.js';
import { tokenNamer, type ServingContext } from './context.js';
import { badRequest } from './errors.js';
import { SseWriter, sendJson } from './http-io.js';
import { chatLogprobs } from './logprobs-format.js';
import { checkModel } from './models.js';
import { parseChatRequest } from './protocol.js';

export async function handleChat(ctx: ServingContext, body: Record<string, unknown>, _req: IncomingMessage, res: ServerResponse): Promise<void> {
  const request = parseChatRequest(body);
  checkModel(ctx, request.model);
  if (!ctx.tokenizer.hasChatTemplate) throw badRequest('this model has no chat template; use /v1/completions', 'messages');
  let promptTokenIds: number[];
  try {
    promptTokenIds = ctx.tokenizer.encodeChat(request.messages);
  } catch (cause) {
    throw badRequest((cause as Error).message, 'messages');
  }
  // Without a limit, generate up to the context length (vLLM's default for chat).
  const maxTokens = request.maxTokens ?? ctx.maxModelLen - promptTokenIds.length;
  if (maxTokens < 1) {
    throw badRequest(`the conversation has ${promptTokenIds.length} tokens, leaving no room in the ${ctx.maxModelLen}-token context`, 'messages');
  }
  const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const admitted = admit(ctx, id, promptTokenIds, { ...request.params, maxTokens }, res);
  const name = tokenNamer(ctx, request.returnTokensAsTokenIds);
  const logprobsOf = (tokens: GeneratedToken[]) => (request.logprobs ? chatLogprobs(tokens, name) : null);

  if (request.stream.stream) {
    const envelope = { id, object: 'chat.completion.chunk', created, model: ctx.servedModelName };
    const sse = new SseWriter(res);
    sse.open();
    await sse.send({ ...envelope, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    let last = { prompt: promptTokenIds.length, completion: 0 };
    try {
      for await (const out of admitted.outputs) {
        last = { prompt: out.numPromptTokens, completion: out.numOutputTokens };
        const lp = out.tokens.length > 0 ? logprobsOf(out.tokens) : null;
        if (out.text === '' && lp === null && !out.finished) continue;
        await sse.send({
          ...envelope,
          choices: [{ index: 0, delta: out.text === '' ? {} : { content: out.text }, logprobs: lp, finish_reason: out.finishReason ?? null, stop_reason: out.finished ? (out.stopReason ?? null) : null }],
        });
      }
    } catch (error) {
      await sse.sendError(toApiError(error));
    }
    if (request.stream.includeUsage) {
      await sse.send({ ...envelope, choices: [], usage: { prompt_tokens: last.prompt, completion_tokens: last.completion, total_tokens: last.prompt + last.completion } });
    }
    await sse.done();
    return;
  }

  const done = await collectCompletion(admitted, promptTokenIds.length);
  if (!done) return;
  sendJson(res, 200, {
    id,
    object: 'chat.completion',
    created,
    model: ctx.servedModelName,
    choices: [{ index: 0, message: { role: 'assistant', content: done.text }, logprobs: logprobsOf(done.tokens), finish_reason: done.finishReason ?? null, stop_reason: done.stopReason ?? null }],
    usage: { prompt_tokens: done.promptTokens, completion_tokens: done.completionTokens, total_tokens: done.promptTokens + done.completionTokens },
  });
}
