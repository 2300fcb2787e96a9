// Comparison of a completions response with a Hugging Face reference run (tools/fixtures).
import { tokenIdsOf, type ReferenceCase, type ReferenceRun } from './helpers.js';

/** The bar: log-probabilities within 1e-3 of the reference. */
export const TOLERANCE = 1e-3;

/** The greedy request that reproduces a reference case: fixed length, top-5 logprobs, ids as tokens. */
export function referenceRequest(c: ReferenceCase, extra: Record<string, unknown> = {}) {
  return {
    prompt: c.prompt,
    max_tokens: c.max_new_tokens,
    temperature: 0,
    ignore_eos: true,
    logprobs: 5,
    return_tokens_as_token_ids: true,
    ...extra,
  };
}

/** Asserts a completions response against a reference run; names the case and step on failure. */
export function expectMatchesReference(label: string, choice: any, usage: any, c: ReferenceCase, ref: ReferenceRun): void {
  expect({ label, prompt_tokens: usage.prompt_tokens }).toEqual({ label, prompt_tokens: c.prompt_token_ids.length });
  const ids = tokenIdsOf(choice.logprobs.tokens);
  expect({ label, ids }).toEqual({ label, ids: ref.greedy_token_ids });
  expect(choice.finish_reason).toBe('length');
  const problems: string[] = [];
  ref.token_logprobs.forEach((want, step) => {
    const got = choice.logprobs.token_logprobs[step];
    if (!(Math.abs(got - want) <= TOLERANCE)) problems.push(`step ${step}: token logprob ${got} vs ${want}`);
    const top = choice.logprobs.top_logprobs[step] as Record<string, number>;
    for (const [id, lp] of ref.top_logprobs[step]!) {
      const mine = top[`token_id:${id}`];
      if (mine === undefined || !(Math.abs(mine - lp) <= TOLERANCE)) problems.push(`step ${step}: top token ${id} logprob ${mine} vs ${lp}`);
    }
  });
  expect({ label, problems }).toEqual({ label, problems: [] });
}

