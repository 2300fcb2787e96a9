import { parseExposition } from './exposition.js';

test('samples, labels with escapes, types, timestamps, and the special values', () => {
  const e = parseExposition([
    '# HELP jamba_ttft_seconds Time to first token.',
    '# TYPE jamba_ttft_seconds histogram',
    'jamba_ttft_seconds_bucket{model="m",le="0.5"} 3',
    'jamba_ttft_seconds_bucket{model="m",le="+Inf"} 4 1700000000000',
    'jamba_ttft_seconds_sum{model="m"} 1.25e0',
    '# TYPE weird gauge',
    'weird{path="a\\\\b",msg="say \\"hi\\"\\n"} -Inf',
    'weird{kind="up"} +Inf',
    'weird{kind="nan"} NaN',
    'weird{kind="prom-client"} Nan',
    '',
  ].join('\n'));
  expect(e.types.get('jamba_ttft_seconds')).toBe('histogram');
  expect(e.samples.map((s) => s.value)).toEqual([3, 4, 1.25, -Infinity, Infinity, NaN, NaN]);
  expect(e.samples[1]!.labels).toEqual({ model: 'm', le: '+Inf' });
  expect(e.samples[3]!.labels).toEqual({ path: 'a\\b', msg: 'say "hi"\n' });
});

test('a line that is not a sample, or a value that is not a number, is refused', () => {
  expect(() => parseExposition('<html>oops</html>')).toThrow(/not a sample line/);
  expect(() => parseExposition('jamba_x{a="b"} twelve')).toThrow(/not a sample value/);
});
