// One request's tokens and bookkeeping as the engine sees it. No tensors here: the KV blocks and the
// Mamba state slot are ids into pools the model runner owns.

export type SequenceStatus = 'waiting' | 'running' | 'finished';

/** OpenAI's finish reasons, plus `abort` for cancelled requests (as vLLM reports them). */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 disables. */
  topP: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
  /** Keep tokens at least this fraction as likely as the most likely one; 0 (default) disables. */
  minP?: number;
  /** Seeds this request's own PRNG; without it the engine draws one. */
  seed?: number;
  /** Most tokens to generate. */
  maxTokens: number;
  /** Strings that end generation; the returned text stops before them. */
  stop: string[];
  /** Token ids that end generation (besides the model's EOS ids unless ignoreEos). */
  stopTokenIds: number[];
  /** Keep generating past the model's EOS ids (benchmarks, fixed-length tests). */
  ignoreEos: boolean;
  /** Top-N log-probabilities per generated token (0..5); undefined returns none. */
  logprobs?: number;
}

export class Sequence {
  /** Prompt followed by the generated tokens. */
  readonly tokenIds: number[];
  readonly numPromptTokens: number;
  status: SequenceStatus = 'waiting';
  /** Tokens already in the KV cache and folded into the Mamba state. */
  numComputedTokens = 0;
  /** KV block ids in order; covers at least numComputedTokens positions. */
  blockTable: number[] = [];
  /** Mamba state slot; -1 while none is held. */
  stateSlot = -1;
  finishReason?: FinishReason;
  /** The stop string or stop token id that ended the sequence, if one did. */
  stopReason?: string | number;
  /** Set when the client goes away while the sequence is inside a model step. */
  abortRequested = false;
  /** Its reader has fallen behind: it keeps its KV blocks and state slot but is not scheduled. */
  paused = false;

  constructor(
    readonly requestId: string,
    promptTokenIds: readonly number[],
    readonly params: SamplingParams,
    readonly arrivalTime: number,
  ) {
    if (promptTokenIds.length === 0) throw new Error(`request ${requestId}: empty prompt`);
    this.tokenIds = [...promptTokenIds];
    this.numPromptTokens = promptTokenIds.length;
  }

  get numTokens(): number {
    return this.tokenIds.length;
  }

  get numOutputTokens(): number {
    return this.tokenIds.length - this.numPromptTokens;
  }

  get outputTokenIds(): number[] {
    return this.tokenIds.slice(this.numPromptTokens);
  }

  /** Tokens still to feed through the model before the next sample (prompt rest, or the last sampled token). */
  get numUncomputedTokens(): number {
    return this.tokenIds.length - this.numComputedTokens;
  }

  get isFinished(): boolean {
    return this.status === 'finished';
  }
}
