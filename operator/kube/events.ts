// Kubernetes Events (core/v1) on a JambaDeployment: what `kubectl describe jd` shows.
import type { CoreV1Event } from '@kubernetes/client-node';
import type { JambaDeployment } from '../api/jambadeployment.js';
import type { PlannedEvent } from '../controller/plan.js';
import { FIELD_MANAGER } from '../controller/labels.js';
import type { KubeClient } from './client.js';
import { RESOURCES, collectionPath } from './resources.js';

export class EventRecorder {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly client: KubeClient, private readonly instance: string) {}

  recordInBackground(jd: JambaDeployment, e: PlannedEvent, now: Date, onError: (err: unknown) => void): void {
    const p = this.record(jd, e, now).catch(onError).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Waits for events still being sent (graceful shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  async record(jd: JambaDeployment, e: PlannedEvent, now: Date): Promise<void> {
    const ns = jd.metadata.namespace!;
    const time = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const body: CoreV1Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${jd.metadata.name}.`, namespace: ns },
      involvedObject: { apiVersion: jd.apiVersion, kind: jd.kind, name: jd.metadata.name, namespace: ns, uid: jd.metadata.uid, resourceVersion: jd.metadata.resourceVersion },
      type: e.type,
      reason: e.reason,
      message: e.message.slice(0, 1024),
      source: { component: FIELD_MANAGER },
      reportingComponent: FIELD_MANAGER,
      reportingInstance: this.instance,
      firstTimestamp: time as unknown as Date,
      lastTimestamp: time as unknown as Date,
      count: 1,
    };
    await this.client.request({ method: 'POST', path: collectionPath(RESOURCES.events, ns), verb: 'CREATE', resource: 'events', body });
  }
}
