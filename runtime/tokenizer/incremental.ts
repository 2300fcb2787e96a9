// Streaming detokenization: text for newly generated tokens, decoded in the context of a few tokens
// before them (so merges, leading-space rules and byte-fallback sequences decode as in the whole),
// and held back while it ends in U+FFFD, i.e. while a multi-byte character is still incomplete.
// The same scheme as Hugging Face TGI and vLLM (prefix offset / read offset).

/** Decodes ids to text, skipping special tokens. */
export type DecodeFn = (ids: readonly number[]) => string;

/** Tokens of the prompt used as context for the first output tokens. */
const INITIAL_CONTEXT_TOKENS = 5;
const REPLACEMENT_CHAR = '\uFFFD';

export class IncrementalDetokenizer {
  private prefixOffset: number;
  private readOffset: number;

  constructor(
    private readonly decode: DecodeFn,
    /** All token ids so far (prompt, then output); read, never modified. */
    private readonly tokens: readonly number[],
    numPromptTokens: number,
  ) {
    this.readOffset = numPromptTokens;
    this.prefixOffset = Math.max(0, numPromptTokens - INITIAL_CONTEXT_TOKENS);
  }

  /**
   * Text contributed by the tokens appended since the text last advanced; '' while an incomplete
   * character is pending. With `flush`, pending bytes are emitted anyway (end of the sequence).
   */
  next(flush = false): string {
    if (this.readOffset >= this.tokens.length) return '';
    const prefixText = this.decode(this.tokens.slice(this.prefixOffset, this.readOffset));
    const fullText = this.decode(this.tokens.slice(this.prefixOffset));
    if (fullText.length <= prefixText.length || (!flush && fullText.endsWith(REPLACEMENT_CHAR))) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.tokens.length;
    return fullText.slice(prefixText.length);
  }
}
