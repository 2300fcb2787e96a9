// The streaming detokenizer against a byte-level decoder (each id is one UTF-8 byte), the worst case
// of byte-fallback tokenizers: characters span several tokens.
import { IncrementalDetokenizer } from './incremental.js';

const decodeBytes = (ids: readonly number[]) => Buffer.from(ids.map((i) => i)).toString('utf8');

test('emits a multi-byte character only once all of its bytes are in, and the whole text in order', () => {
  const prompt = [...Buffer.from('ab', 'utf8')];
  const tokens = [...prompt];
  const detok = new IncrementalDetokenizer(decodeBytes, tokens, prompt.length);
  const pieces: string[] = [];
  for (const b of Buffer.from('x€y日本', 'utf8')) {
    tokens.push(b);
    pieces.push(detok.next());
  }
  expect(pieces.join('')).toBe('x€y日本');
  // '€' is 3 bytes: two steps yield nothing, the third yields the character.
  expect(pieces.slice(0, 5)).toEqual(['x', '', '', '€', 'y']);
  expect(pieces.every((p) => !p.includes('\uFFFD'))).toBe(true);
});

test('flush hands out pending bytes at the end', () => {
  const tokens = [0x61];
  const detok = new IncrementalDetokenizer(decodeBytes, tokens, 1);
  tokens.push(0xe2, 0x82);
  expect(detok.next()).toBe('');
  expect(detok.next(true)).toBe('\uFFFD');
});
