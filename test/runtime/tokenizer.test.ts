// The checkpoint tokenizer and chat template reproduce Hugging Face's (recorded in the fixtures).
import { IncrementalDetokenizer } from '../../runtime/tokenizer/incremental.js';
import { TextTokenizer } from '../../runtime/tokenizer/tokenizer.js';
import { FIXTURE_NAMES, fixtureDir, loadReference } from './helpers.js';

describe.each(FIXTURE_NAMES.map((f) => [f]))('%s', (fixture) => {
  const reference = loadReference(fixture);
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    tokenizer = await TextTokenizer.fromDir(fixtureDir(fixture));
  });

  test('prompts encode to the reference ids (BOS included)', () => {
    for (const c of reference.cases) expect({ name: c.name, ids: tokenizer.encode(c.prompt) }).toEqual({ name: c.name, ids: c.prompt_token_ids });
  });

  test('the chat template renders and encodes as apply_chat_template', () => {
    expect(tokenizer.applyChatTemplate(reference.chat.messages)).toBe(reference.chat.rendered);
    expect(tokenizer.encodeChat(reference.chat.messages)).toEqual(reference.chat.token_ids);
  });

  test('streaming detokenization of the reference outputs equals decoding them whole', () => {
    for (const c of reference.cases) {
      const tokens = [...c.prompt_token_ids];
      const detok = new IncrementalDetokenizer((ids) => tokenizer.decode(ids), tokens, tokens.length);
      let streamed = '';
      for (const id of c.bf16.greedy_token_ids) {
        tokens.push(id);
        const piece = detok.next();
        expect(piece.endsWith('\uFFFD')).toBe(false);
        streamed += piece;
      }
      streamed += detok.next(true);
      const whole = tokenizer.decode(tokens).slice(tokenizer.decode(c.prompt_token_ids).length);
      expect({ name: c.name, streamed }).toEqual({ name: c.name, streamed: whole });
    }
  });
});
