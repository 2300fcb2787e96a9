import { UNKNOWN_LOAD_COST, deletionCostPatches } from './deletion-cost.js';

test('each pod costs its requests in flight; unknown load costs the most; unchanged annotations are not rewritten', () => {
  expect(deletionCostPatches([
    { name: 'busy', inFlight: 7 },
    { name: 'idle', inFlight: 0, currentCost: '3' },
    { name: 'same', inFlight: 2, currentCost: '2' },
    { name: 'unknown' },
  ])).toEqual([
    { name: 'busy', cost: '7' },
    { name: 'idle', cost: '0' },
    { name: 'unknown', cost: String(UNKNOWN_LOAD_COST) },
  ]);
});
