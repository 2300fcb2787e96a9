// The checkpoint's tokenizer (tokenizer.json + tokenizer_config.json) through @huggingface/tokenizers,
// and its chat template through @huggingface/jinja.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ChatTemplate, type ChatMessage } from './chat-template.js';

/** A special token in tokenizer_config.json: a plain string or an AddedToken dict. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new Error(`reading ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw new Error(`parsing ${path}: ${(cause as Error).message}`, { cause });
  }
}

export class TextTokenizer {
  readonly bosToken?: string;
  readonly eosToken?: string;
  private readonly chatTemplate?: ChatTemplate;
  private readonly tokenStrings = new Map<number, string>();

  private constructor(
    private readonly tokenizer: Tokenizer,
    config: Record<string, unknown>,
    /** Largest id the tokenizer knows, plus one. */
    readonly vocabSize: number,
  ) {
    this.bosToken = tokenContent(config['bos_token']);
    this.eosToken = tokenContent(config['eos_token']);
    const source = ChatTemplate.pickSource(config['chat_template']);
    if (source !== undefined) {
      this.chatTemplate = new ChatTemplate(source, {
        bos_token: this.bosToken,
        eos_token: this.eosToken,
        unk_token: tokenContent(config['unk_token']),
        pad_token: tokenContent(config['pad_token']),
      });
    }
  }

  static async fromDir(dir: string): Promise<TextTokenizer> {
    const tokenizerJson = await readJson(join(dir, 'tokenizer.json'));
    const config = await readJson(join(dir, 'tokenizer_config.json'));
    return TextTokenizer.fromJson(tokenizerJson, config, join(dir, 'tokenizer.json'));
  }

  /** From the parsed tokenizer.json and tokenizer_config.json; `source` names them in errors. */
  static fromJson(tokenizerJson: Record<string, unknown>, config: Record<string, unknown>, source: string): TextTokenizer {
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (cause) {
      throw new Error(`building tokenizer from ${source}: ${(cause as Error).message}`, { cause });
    }
    let maxId = -1;
    for (const id of tokenizer.get_vocab(true).values()) if (id > maxId) maxId = id;
    return new TextTokenizer(tokenizer, config, maxId + 1);
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== undefined;
  }

  /** Token ids of `text`; with special tokens (BOS per the post-processor) unless told otherwise. */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  /** The text of one token on its own (for logprobs), special tokens included. Cached. */
  tokenString(id: number): string {
    const cached = this.tokenStrings.get(id);
    if (cached !== undefined) return cached;
    const s = this.tokenizer.decode([id], { skip_special_tokens: false });
    this.tokenStrings.set(id, s);
    return s;
  }

  /** The prompt text of a conversation, ending with the assistant's turn opener. */
  applyChatTemplate(messages: ChatMessage[]): string {
    if (!this.chatTemplate) throw new Error('this model has no chat template (tokenizer_config.json chat_template)');
    return this.chatTemplate.render(messages, true);
  }

  /** Token ids of a conversation; the template already writes BOS and other special tokens. */
  encodeChat(messages: ChatMessage[]): number[] {
    return this.encode(this.applyChatTemplate(messages), false);
  }
}
