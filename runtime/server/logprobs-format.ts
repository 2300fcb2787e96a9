// Per-token log-probabilities in OpenAI's two shapes: the legacy completions shape
// (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`) and the chat shape (`content: [...]`).
import type { GeneratedToken } from '../engine/engine.js';

/** How a token is written: its text, or vLLM's `token_id:N` with return_tokens_as_token_ids. */
export type TokenNamer = (tokenId: number) => string;

// JSON has no -Infinity; vLLM clamps the same way.
const finite = (lp: number): number => Math.max(lp, -9999);

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

/** Builds the completions shape; text offsets continue across calls (streaming). */
export class CompletionLogprobsBuilder {
  constructor(
    private readonly name: TokenNamer,
    private offset: number,
  ) {}

  build(tokens: GeneratedToken[]): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const t of tokens) {
      const name = this.name(t.tokenId);
      out.tokens.push(name);
      out.token_logprobs.push(finite(t.logprob!));
      // The top N, plus the sampled token when it is not among them (vLLM's shape: up to N+1 entries).
      const top: Record<string, number> = {};
      for (const e of t.topLogprobs ?? []) top[this.name(e.tokenId)] ??= finite(e.logprob);
      top[name] ??= finite(t.logprob!);
      out.top_logprobs.push(top);
      out.text_offset.push(this.offset);
      this.offset += name.length;
    }
    return out;
  }
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export function chatLogprobs(tokens: GeneratedToken[], name: TokenNamer): { content: ChatTokenLogprob[] } {
  const entry = (tokenId: number, logprob: number) => {
    const token = name(tokenId);
    return { token, logprob: finite(logprob), bytes: [...Buffer.from(token, 'utf8')] };
  };
  return {
    content: tokens.map((t) => ({
      ...entry(t.tokenId, t.logprob!),
      top_logprobs: (t.topLogprobs ?? []).map((e) => entry(e.tokenId, e.logprob)),
    })),
  };
}
