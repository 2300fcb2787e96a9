import { counterRate, increase, trimToWindow, type CounterSample } from './rates.js';

const s = (at: number, value: number): CounterSample => ({ at: at * 1000, value });

test.each([
  { name: 'steady counter', samples: [s(0, 0), s(10, 500), s(20, 1000)], rate: 50 },
  { name: 'one sample says nothing', samples: [s(0, 100)], rate: undefined },
  { name: 'flat counter', samples: [s(0, 7), s(10, 7)], rate: 0 },
  // The runtime restarted between 10 s and 20 s and had served 200 tokens since: 500 + 200 over 20 s.
  { name: 'a reset counts from zero, never negative', samples: [s(0, 0), s(10, 500), s(20, 200)], rate: 35 },
  { name: 'two resets', samples: [s(0, 1000), s(10, 100), s(20, 50), s(30, 350)], rate: (100 + 50 + 300) / 30 },
  { name: 'same timestamp twice', samples: [s(5, 1), s(5, 2)], rate: undefined },
])('$name', ({ samples, rate }) => {
  expect(counterRate(samples)).toBe(rate);
});

test('increase never goes negative across resets', () => {
  expect(increase([s(0, 900), s(1, 0), s(2, 0)])).toBe(0);
});

test('the window keeps the newest samples and the one just before them', () => {
  const samples = [s(0, 0), s(10, 1), s(20, 2), s(30, 3), s(40, 4)];
  expect(trimToWindow(samples, 15_000)).toEqual([s(20, 2), s(30, 3), s(40, 4)]);
  expect(trimToWindow(samples, 60_000)).toEqual(samples);
  expect(trimToWindow([], 60_000)).toEqual([]);
});
