// Stop strings over streamed text, with a byte-level decoder (each id one UTF-8 byte).
import { OutputText } from './output-text.js';

const decodeBytes = (ids: readonly number[]) => Buffer.from([...ids]).toString('utf8');

function stream(prompt: string, output: string, stop: string[]): { deltas: string[]; stopped?: string; text: string } {
  const tokens = [...Buffer.from(prompt)];
  const text = new OutputText(decodeBytes, tokens, tokens.length, stop);
  const deltas: string[] = [];
  const bytes = [...Buffer.from(output)];
  for (let i = 0; i < bytes.length; i++) {
    tokens.push(bytes[i]!);
    const last = i === bytes.length - 1;
    const stopped = text.append(false, last);
    deltas.push(text.takeDelta(stopped !== undefined || last));
    if (stopped !== undefined) return { deltas, stopped, text: text.fullText };
  }
  return { deltas, text: text.fullText };
}

test('text ends before the first stop string, and no part of it is ever streamed', () => {
  const r = stream('>', 'hello END world', ['END']);
  expect(r.stopped).toBe('END');
  expect(r.text).toBe('hello ');
  expect(r.deltas.join('')).toBe('hello ');
  // "E" and "EN" were held back while they could still begin "END".
  expect(r.deltas.some((d) => d.includes('E'))).toBe(false);
});

test('the earliest of several stop strings wins; a near-miss is released', () => {
  const r = stream('>', 'abcENxyz', ['END', 'yz', 'cE+']);
  expect(r.stopped).toBe('yz');
  expect(r.text).toBe('abcENx');
  expect(r.deltas.join('')).toBe('abcENx');
});

test('without stop strings text streams as it comes, multi-byte characters whole', () => {
  const r = stream('>', 'añb€', []);
  expect(r.stopped).toBeUndefined();
  expect(r.deltas).toEqual(['a', '', 'ñ', 'b', '', '', '€']);
});
