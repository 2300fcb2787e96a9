// GET /v1/models, and the check that a request names the served model.
import type { ServingContext } from './context.js';
import { ApiError } from './errors.js';

export function checkModel(ctx: Pick<ServingContext, 'servedModelName'>, model: string | undefined): void {
  // Omitting `model` is allowed (vLLM does the same): there is only one.
  if (model !== undefined && model !== ctx.servedModelName) {
    throw new ApiError(404, `the model '${model}' does not exist; this server serves '${ctx.servedModelName}'`, 'invalid_request_error', 'model', 'model_not_found');
  }
}

export function modelList(servedModelName: string, root: string, maxModelLen: number | undefined, created: number) {
  return {
    object: 'list',
    data: [{ id: servedModelName, object: 'model', created, owned_by: 'jamba-serving', root, max_model_len: maxModelLen ?? null }],
  };
}
