// POST /v1/completions.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { FinishReason } from '../engine/sequence.js';
import { admit, collectCompletion, toApiError } from './admission.js';
import { tokenNamer, type ServingContext } from './context.js';
import { SseWriter, sendJson } from './http-io.js';
import { CompletionLogprobsBuilder, type CompletionLogprobs } from './logprobs-format.js';
import { parseCompletionRequest } from './protocol.js';
import { checkModel } from './models.js';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

const usage = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

export async function handleCompletion(ctx: ServingContext, body: Record<string, unknown>, _req: IncomingMessage, res: ServerResponse): Promise<void> {
  const request = parseCompletionRequest(body);
  checkModel(ctx, request.model);
  const promptTokenIds = 'text' in request.prompt ? ctx.tokenizer.encode(request.prompt.text) : request.prompt.tokenIds;
  const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const echoText = request.echo ? ('text' in request.prompt ? request.prompt.text : ctx.tokenizer.decode(promptTokenIds)) : '';
  const logprobs = request.params.logprobs !== undefined ? new CompletionLogprobsBuilder(tokenNamer(ctx, request.returnTokensAsTokenIds), echoText.length) : undefined;
  const choice = (text: string, lp: CompletionLogprobs | null, finishReason: FinishReason | null, stopReason: string | number | null) => ({
    index: 0,
    text,
    logprobs: lp,
    finish_reason: finishReason,
    stop_reason: stopReason,
  });
  const envelope = { id, object: 'text_completion', created, model: ctx.servedModelName };
  // Nothing that can throw between admission and reading the outputs (reading is what ends a request).
  const admitted = admit(ctx, id, promptTokenIds, request.params, res);

  if (request.stream.stream) {
    const sse = new SseWriter(res);
    sse.open();
    let pendingEcho = echoText;
    let last = { prompt: promptTokenIds.length, completion: 0 };
    try {
      for await (const out of admitted.outputs) {
        last = { prompt: out.numPromptTokens, completion: out.numOutputTokens };
        const text = pendingEcho + out.text;
        pendingEcho = '';
        const lp = logprobs && out.tokens.length > 0 ? logprobs.build(out.tokens) : null;
        if (text === '' && lp === null && !out.finished) continue;
        await sse.send({ ...envelope, choices: [choice(text, lp, out.finishReason ?? null, out.finished ? (out.stopReason ?? null) : null)] });
      }
    } catch (error) {
      await sse.sendError(toApiError(error));
    }
    if (request.stream.includeUsage) await sse.send({ ...envelope, choices: [], usage: usage(last.prompt, last.completion) });
    await sse.done();
    return;
  }

  const done = await collectCompletion(admitted, promptTokenIds.length, echoText);
  if (!done) return;
  sendJson(res, 200, {
    ...envelope,
    choices: [choice(done.text, logprobs ? logprobs.build(done.tokens) : null, done.finishReason ?? null, done.stopReason ?? null)],
    usage: usage(done.promptTokens, done.completionTokens),
  });
}
