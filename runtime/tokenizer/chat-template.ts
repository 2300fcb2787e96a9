// The checkpoint's chat template (Jinja, from tokenizer_config.json), rendered the way Hugging Face
// `apply_chat_template(..., add_generation_prompt=True)` does.
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

type TemplateSource = string | Array<{ name: string; template: string }> | Record<string, string>;

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    source: string,
    private readonly specialTokens: { bos_token?: string; eos_token?: string; unk_token?: string; pad_token?: string },
  ) {
    try {
      this.template = new Template(source);
    } catch (cause) {
      throw new Error('parsing chat template', { cause });
    }
  }

  /** The default template of tokenizer_config's `chat_template` (a string, or a named list). */
  static pickSource(value: unknown): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string') return value;
    const source = value as TemplateSource;
    if (Array.isArray(source)) return source.find((t) => t.name === 'default')?.template ?? source[0]?.template;
    if (typeof source === 'object') return source['default'] ?? Object.values(source)[0];
    return undefined;
  }

  render(messages: ChatMessage[], addGenerationPrompt = true): string {
    try {
      return this.template.render({ messages, add_generation_prompt: addGenerationPrompt, ...this.specialTokens });
    } catch (cause) {
      throw new Error(`rendering chat template: ${(cause as Error).message}`, { cause });
    }
  }
}
