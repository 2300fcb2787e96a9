// A tokenizer for models without a checkpoint (random-weight presets, `serve --preset`): one word per
// token id, "t0" … "t{V-1}", split on whitespace (a WordPiece model whose vocabulary is those words), so
// benchmark prompts can be written as text or as ids and every id decodes to something.
export function syntheticTokenizer(vocabSize: number): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const vocab: Record<string, number> = {};
  for (let id = 0; id < vocabSize; id++) vocab[`t${id}`] = id;
  return {
    tokenizer: {
      version: '1.0',
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: 'WhitespaceSplit' },
      post_processor: null,
      decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
      model: { type: 'WordPiece', unk_token: 't0', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    },
    config: { unk_token: 't0' },
  };
}
