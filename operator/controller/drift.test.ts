import type { V1Deployment, V1ManagedFieldsEntry } from '@kubernetes/client-node';
import { contains, firstDrift, parseQuantity, compareQuantities } from './drift.js';
import { desiredDeployment } from './desired.js';
import { jambaDeployment } from './testing/fixtures.js';
import { applyEntry, asApplied } from './testing/managed-fields.js';

const MANAGER = 'jamba-operator';
type Edit = (d: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
const container = (d: any) => d.spec.template.spec.containers[0]; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Another manager's Update entry owning the given fields (as `kubectl set env` or `kubectl edit` leave). */
function updateBy(manager: string, fieldsV1: object): V1ManagedFieldsEntry {
  return { manager, operation: 'Update', apiVersion: 'apps/v1', fieldsType: 'FieldsV1', fieldsV1 };
}

/** Our apply entry minus one path (ownership moved away when someone else changed it). */
function withoutOwnership(d: V1Deployment, path: string[]): void {
  let f = d.metadata!.managedFields![0]!.fieldsV1 as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const p of path.slice(0, -1)) f = f[p];
  delete f[path.at(-1)!];
}

describe('firstDrift (judged on the fields we own)', () => {
  const jd = jambaDeployment({ runtime: { resources: { requests: { cpu: '0.5', memory: '1Gi' } } } });
  const desired = desiredDeployment(jd);

  test('what the server returns for our apply is in sync, with defaults and status added', () => {
    const d = asApplied(desired) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    d.spec.template.spec.containers[0].terminationMessagePath = '/dev/termination-log';
    d.spec.template.spec.dnsPolicy = 'ClusterFirst';
    d.status = { replicas: 1 };
    expect(firstDrift(d, desired, MANAGER)).toBeUndefined();
  });

  test.each<[string, Edit]>([
    ['quantities rewritten canonically (0.5 → 500m, 16Gi kept)', (d) => { container(d).resources.requests.cpu = '500m'; }],
    ['an env var added by kubectl set env (owned by kubectl-set)', (d) => {
      container(d).env = [{ name: 'DEBUG', value: '1' }];
      d.metadata.managedFields.push(updateBy('kubectl-set', { 'f:spec': { 'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"runtime"}': { 'f:env': { '.': {}, 'k:{"name":"DEBUG"}': { '.': {}, 'f:name': {}, 'f:value': {} } } } } } } } }));
    }],
    ['an annotation added by kubectl annotate', (d) => {
      d.metadata.annotations = { note: 'x' };
      d.metadata.managedFields.push(updateBy('kubectl-annotate', { 'f:metadata': { 'f:annotations': { '.': {}, 'f:note': {} } } }));
    }],
    ['a keyed list in another order', (d) => { d.spec.template.spec.volumes.reverse(); }],
    ['no apiVersion/kind (a LIST item)', (d) => { delete d.apiVersion; delete d.kind; }],
  ])('no drift: %s', (_what, edit) => {
    const d = asApplied(desired);
    edit(d);
    expect(firstDrift(d, desired, MANAGER)).toBeUndefined();
  });

  test.each<[string, Edit, string]>([
    ['an owned value changed', (d) => { container(d).image = 'other:1'; }, 'spec.template.spec.containers[0].image'],
    ['an owned value changed by someone who now owns it', (d) => {
      container(d).image = 'other:1';
      withoutOwnership(d, ['f:spec', 'f:template', 'f:spec', 'f:containers', 'k:{"name":"runtime"}', 'f:image']);
    }, 'spec.template.spec.containers[0].image'],
    ['a quantity changed in value', (d) => { container(d).resources.requests.cpu = '600m'; }, 'spec.template.spec.containers[0].resources.requests.cpu'],
    ['an atomic list edited', (d) => { container(d).args.push('--extra'); }, 'spec.template.spec.containers[0].args'],
    ['a keyed entry of ours removed', (d) => { d.spec.template.spec.volumes.pop(); }, 'spec.template.spec.volumes[1]'],
    ['our apply never recorded', (d) => { d.metadata.managedFields = []; }, 'metadata.managedFields'],
  ])('drift: %s → %s', (_what, edit, path) => {
    const d = asApplied(desired);
    edit(d);
    expect(firstDrift(d, desired, MANAGER)).toBe(path);
  });

  test('a field the spec no longer wants but we still own is drift (the apply removes it)', () => {
    const before = desiredDeployment(jambaDeployment({ ...jd.spec, scheduling: { nodeSelector: { pool: 'gpu' } } }));
    const observed = asApplied(before);
    expect(firstDrift(observed, before, MANAGER)).toBeUndefined();
    expect(firstDrift(observed, desired, MANAGER)).toBe('spec.template.spec.nodeSelector');
  });

  test('the recorded fields are those the real server records for the same apply (shape check)', () => {
    const entry = applyEntry(desired);
    const spec = (entry.fieldsV1 as any)['f:spec']['f:template']['f:spec']; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(Object.keys(spec['f:containers'])).toEqual(['k:{"name":"runtime"}']);
    expect(spec['f:containers']['k:{"name":"runtime"}']['f:args']).toEqual({});
  });
});

describe('quantities', () => {
  test.each([
    ['0.5', '500m', 0], ['1', '1000m', 0], ['16Gi', '17179869184', 0], ['1e3', '1k', 0], ['1.5Gi', '1536Mi', 0],
    ['8', 8, 0], ['100m', '0.1', 0], ['1', '2', -1], ['1Ki', '1k', 1], ['.5', '0.5', 0],
  ])('%s vs %s', (a, b, cmp) => {
    expect(compareQuantities(parseQuantity(a)!, parseQuantity(b)!)).toBe(cmp);
  });
  test.each(['', 'abc', '1x', '1.2.3', 'Gi', null, {}])('not a quantity: %p', (v) => {
    expect(parseQuantity(v)).toBeUndefined();
  });
});

describe('contains (desired ⊆ observed)', () => {
  test.each([
    ['equal scalars', 1, 1, true],
    ['different scalars', 1, 2, false],
    ['server-added keys are fine', { a: 1, b: { c: 2, d: 3 } }, { a: 1, b: { c: 2 } }, true],
    ['missing key', { a: 1 }, { a: 1, b: 2 }, false],
    ['list element defaulted', { l: [{ n: 'x', v: 1, proto: 'TCP' }] }, { l: [{ n: 'x', v: 1 }] }, true],
    ['list entry added', { l: [1, 2] }, { l: [1] }, false],
    ['object vs array', { a: [] }, { a: {} }, false],
    ['string vs number outside quantities', { q: 8 }, { q: '8' }, false],
    ['quantity by value', { limits: { cpu: '500m' } }, { limits: { cpu: '0.5' } }, true],
  ])('%s', (_name, observed, desired, expected) => {
    expect(contains(observed, desired)).toBe(expected);
  });
});
