import { KubeConfig, type Informer, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { FakeClock } from '../controller/backoff.js';
import { ResilientInformer } from './informer.js';

/** Stands in for client-node's ListWatch: fires the callbacks the real one fires. */
class ScriptedInformer {
  callbacks: Record<string, ((x?: any) => void)[]> = { add: [], update: [], delete: [], error: [], connect: [] };
  starts = 0;
  constructor(private readonly listFn: () => Promise<unknown>) {}
  on(verb: string, cb: (x?: any) => void) { this.callbacks[verb]!.push(cb); }
  off() {}
  async start() {
    this.starts++;
    this.callbacks.connect!.forEach((c) => c());
    try { await this.listFn(); } catch (e) { this.fail(e); }
  }
  async stop() {}
  get() { return undefined; }
  list() { return []; }
  fail(err: unknown) { this.callbacks.error!.forEach((c) => c(err)); }
}

describe('ResilientInformer', () => {
  test('restarts after errors with capped exponential backoff; a good list resets it', async () => {
    const clock = new FakeClock();
    let scripted: ScriptedInformer | undefined;
    const delays: number[] = [];
    let down = false;
    let watches = 0;
    const informer = new ResilientInformer<KubernetesObject>({
      name: 'pods', kubeConfig: new KubeConfig(), path: '/api/v1/pods', clock,
      backoff: { baseMs: 100, capMs: 350 },
      list: async () => {
        if (down) throw new Error('connect ECONNREFUSED');
        return { items: [], metadata: { resourceVersion: '1' } };
      },
      onError: (_e, d) => delays.push(d),
      onWatch: () => watches++,
      factory: (_kc, _p, list) => (scripted = new ScriptedInformer(list)) as unknown as Informer<KubernetesObject> & ObjectCache<KubernetesObject>,
    });
    await informer.start();
    expect(informer.synced).toBe(true);
    const s = scripted!;
    const flush = async () => { for (let i = 0; i < 5; i++) await Promise.resolve(); };

    down = true;
    s.fail(new Error('watch closed: connection reset'));
    s.fail(new Error('a second report of the same failure schedules nothing more'));
    for (const delay of [100, 200, 350, 350]) {
      const before = s.starts;
      clock.advance(delay - 1);
      expect(s.starts).toBe(before);
      clock.advance(1);
      expect(s.starts).toBe(before + 1);
      await flush(); // the restart's list fails → ERROR → next restart scheduled
    }
    expect(delays).toEqual([100, 200, 350, 350, 350]);
    down = false;
    clock.advance(350);
    await flush();
    s.fail(new Error('later failure'));
    expect(delays.at(-1)).toBe(100);
    expect(watches).toBe(1 + 5);
  });

  test('no restart after stop()', async () => {
    const clock = new FakeClock();
    let scripted: ScriptedInformer | undefined;
    const informer = new ResilientInformer<KubernetesObject>({
      name: 'x', kubeConfig: new KubeConfig(), path: '/x', clock,
      list: async () => { throw new Error('down'); },
      factory: (_kc, _p, list) => (scripted = new ScriptedInformer(list)) as unknown as Informer<KubernetesObject> & ObjectCache<KubernetesObject>,
    });
    await informer.start().catch(() => undefined);
    await informer.stop();
    scripted!.fail(new Error('late'));
    clock.advance(60_000);
    expect(scripted!.starts).toBe(1);
    expect(clock.pending()).toBe(0);
  });
});
