import { contains, firstDifference } from './drift.js';

describe('contains (desired ⊆ observed)', () => {
  test.each([
    ['equal scalars', 1, 1, true],
    ['different scalars', 1, 2, false],
    ['server-added keys are fine', { a: 1, b: { c: 2, d: 3 } }, { a: 1, b: { c: 2 } }, true],
    ['missing key', { a: 1 }, { a: 1, b: 2 }, false],
    ['list element changed', { l: [{ n: 'x', v: 1 }] }, { l: [{ n: 'x', v: 2 }] }, false],
    ['list element defaulted', { l: [{ n: 'x', v: 1, proto: 'TCP' }] }, { l: [{ n: 'x', v: 1 }] }, true],
    ['list entry added by hand', { l: [1, 2] }, { l: [1] }, false],
    ['list entry removed by hand', { l: [1] }, { l: [1, 2] }, false],
    ['desired undefined field ignored', { a: 1 }, { a: 1, b: undefined }, true],
    ['object vs array', { a: [] }, { a: {} }, false],
    ['string vs number quantity', { q: 8 }, { q: '8' }, false],
  ])('%s', (_name, observed, desired, expected) => {
    expect(contains(observed, desired)).toBe(expected);
  });

  test('firstDifference names the path', () => {
    expect(firstDifference({ spec: { replicas: 3, x: 1 } }, { spec: { replicas: 1 } })).toBe('spec.replicas');
    expect(firstDifference({ l: [{ a: 1 }, { a: 2 }] }, { l: [{ a: 1 }, { a: 3 }] })).toBe('l[1].a');
    expect(firstDifference({ a: 1 }, { a: 1 })).toBeUndefined();
  });
});
