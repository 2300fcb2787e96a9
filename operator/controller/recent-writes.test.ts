import type { KubernetesObject } from '@kubernetes/client-node';
import { RecentWrites } from './recent-writes.js';

const obj = (rv: string, mark = ''): KubernetesObject => ({ metadata: { name: 'x', namespace: 'ns', resourceVersion: rv, labels: { mark } } });

describe('RecentWrites', () => {
  test.each([
    // what the cache showed when we wrote, what it shows now, which one the reconcile sees
    ['cache still shows the version we wrote over → our write', obj('1', 'old'), obj('1', 'old'), 'ours'],
    ['cache caught up → the cache', obj('1', 'old'), obj('2', 'ours'), 'cache'],
    ['someone wrote after us → the cache', obj('1', 'old'), obj('3', 'theirs'), 'cache'],
    ['we created it, cache has nothing yet → our write', undefined, undefined, 'ours'],
    ['we created it, cache has it → the cache', undefined, obj('2', 'ours'), 'cache'],
  ] as const)('%s', (_n, basedOn, cachedNow, expected) => {
    const w = new RecentWrites();
    const ours = obj('2', 'ours');
    w.remember('Deployment/ns/x', basedOn, ours);
    const seen = w.fresher('Deployment/ns/x', cachedNow);
    expect(seen).toBe(expected === 'ours' ? ours : cachedNow);
    expect(w.size).toBe(expected === 'ours' ? 1 : 0);
  });

  test('two writes before the cache catches up: the cache showing the first is still stale', () => {
    const w = new RecentWrites();
    const first = obj('2', 'first');
    const second = obj('3', 'second');
    w.remember('JambaDeployment/ns/x', obj('1', 'old'), first);
    // The second reconcile saw our first write through the memo, but passes the stale cached object.
    w.remember('JambaDeployment/ns/x', obj('1', 'old'), second);
    expect(w.fresher('JambaDeployment/ns/x', obj('1', 'old'))).toBe(second);
    expect(w.fresher('JambaDeployment/ns/x', first)).toBe(second);
    const caughtUp = obj('3', 'second');
    expect(w.fresher('JambaDeployment/ns/x', caughtUp)).toBe(caughtUp);
    expect(w.size).toBe(0);
  });

  test('forget drops the memos of one JambaDeployment', () => {
    const w = new RecentWrites();
    w.remember('Deployment/ns/x', undefined, obj('1'));
    w.remember('JambaDeployment/ns/x', undefined, obj('1'));
    w.remember('Deployment/ns/xy', undefined, obj('1'));
    w.forget('ns/x');
    expect(w.size).toBe(1);
  });
});
