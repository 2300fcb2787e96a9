// A sequence's generated text as the client sees it: incremental detokenization, stop strings
// (the text ends before the first stop string found), and hold-back of the last characters that
// could still turn out to be the start of a stop string, so a stream never shows them.
import { IncrementalDetokenizer, type DecodeFn } from '../tokenizer/incremental.js';

export class OutputText {
  private readonly detokenizer: IncrementalDetokenizer;
  /** Generated text so far (truncated at a stop string once one is found). */
  private text = '';
  private emitted = 0;
  private readonly holdBack: number;

  constructor(
    decode: DecodeFn,
    tokens: readonly number[],
    numPromptTokens: number,
    private readonly stop: readonly string[],
  ) {
    this.detokenizer = new IncrementalDetokenizer(decode, tokens, numPromptTokens);
    this.holdBack = stop.length > 0 ? Math.max(...stop.map((s) => s.length)) - 1 : 0;
  }

  /**
   * Takes in the newest token(s). Returns the stop string when the text now contains one (the text
   * is cut before it). `skipText` appends no text (a stop token, which is not part of the output).
   */
  append(skipText: boolean, final: boolean): string | undefined {
    if (skipText) {
      this.detokenizer.next(); // keep offsets moving; a stop token's text is not output
      return undefined;
    }
    const previousLength = this.text.length;
    this.text += this.detokenizer.next(final);
    if (this.stop.length === 0 || this.text.length === previousLength) return undefined;
    // Only a stop string that ends in the new text can be new.
    const searchFrom = Math.max(0, previousLength - this.holdBack);
    let best = -1;
    let found: string | undefined;
    for (const s of this.stop) {
      const at = this.text.indexOf(s, searchFrom);
      if (at >= 0 && (best < 0 || at < best)) {
        best = at;
        found = s;
      }
    }
    if (found !== undefined) this.text = this.text.slice(0, best);
    return found;
  }

  /** Text not yet handed out; while not finished, the tail that might begin a stop string stays back. */
  takeDelta(finished: boolean): string {
    const end = finished ? this.text.length : Math.max(this.emitted, this.text.length - this.holdBack);
    const delta = this.text.slice(this.emitted, end);
    this.emitted = end;
    return delta;
  }

  get fullText(): string {
    return this.text;
  }
}
