// A small typed builder for OpenAPI v3 structural schemas. Each builder returns a Field that carries
// both the JSON schema (what the CRD publishes) and, at the type level, the TypeScript type of the
// value, so one declaration yields the CRD and the types the controller uses.

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  fieldPath?: string;
}

export interface JsonSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  default?: unknown;
  enum?: readonly unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema;
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
}

/** `Present` is true when the value is always there after API-server defaulting (required or defaulted). */
export interface Field<T, Present extends boolean = false> {
  readonly schema: JsonSchema;
  readonly present: Present;
  readonly required: boolean;
  /** Phantom: never set at run time, only carries T. */
  readonly _type?: T;
}

export type TypeOf<F> = F extends Field<infer T, boolean> ? T : never;

type PresentKeys<P> = { [K in keyof P]: P[K] extends Field<unknown, true> ? K : never }[keyof P];
type OptionalKeys<P> = Exclude<keyof P, PresentKeys<P>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type ObjectOf<P extends Record<string, Field<unknown, boolean>>> = Simplify<
  { [K in PresentKeys<P>]: TypeOf<P[K]> } & { [K in OptionalKeys<P>]?: TypeOf<P[K]> }
>;

interface Common {
  description?: string;
}

function field<T>(schema: JsonSchema): Field<T, false> {
  return { schema, present: false, required: false };
}

/** Marks a field required: the API server refuses objects without it. */
export function required<T>(f: Field<T, boolean>): Field<T, true> {
  return { ...f, present: true, required: true };
}

/**
 * Gives a field a default the API server fills in, so the controller always sees it. An object may
 * default to a partial value (often `{}`): the server then applies its fields' own defaults.
 */
export function withDefault<T>(f: Field<T, boolean>, value: T extends readonly unknown[] ? T : T extends object ? Partial<T> : T): Field<T, true> {
  return { ...f, schema: { ...f.schema, default: value }, present: true };
}

export function withRules<T, P extends boolean>(f: Field<T, P>, rules: CelRule[]): Field<T, P> {
  const existing = f.schema['x-kubernetes-validations'] ?? [];
  return { ...f, schema: { ...f.schema, 'x-kubernetes-validations': [...existing, ...rules] } };
}

export function string(o: Common & { minLength?: number; maxLength?: number; pattern?: string; format?: 'date-time' } = {}): Field<string> {
  return field({ type: 'string', ...o });
}

export function enumOf<const V extends readonly string[]>(values: V, o: Common = {}): Field<V[number]> {
  // maxLength bounds the CEL cost estimate of rules that read the value.
  return field({ type: 'string', enum: values, maxLength: Math.max(...values.map((v) => v.length)), ...o });
}

export function integer(o: Common & { minimum?: number; maximum?: number; enum?: readonly number[] } = {}): Field<number> {
  return field({ type: 'integer', format: 'int32', ...o });
}

export function number(o: Common & { minimum?: number; maximum?: number } = {}): Field<number> {
  return field({ type: 'number', ...o });
}

export function boolean(o: Common = {}): Field<boolean> {
  return field({ type: 'boolean', ...o });
}

export function array<T>(items: Field<T, boolean>, o: Common & { maxItems?: number; listType?: 'atomic' | 'set' } = {}): Field<T[]> {
  const { listType, ...rest } = o;
  return field({ type: 'array', items: items.schema, ...(listType ? { 'x-kubernetes-list-type': listType } : {}), ...rest });
}

export function stringMap(o: Common = {}): Field<Record<string, string>> {
  return field({ type: 'object', additionalProperties: { type: 'string' }, ...o });
}

export function object<P extends Record<string, Field<unknown, boolean>>>(
  props: P,
  o: Common & { rules?: CelRule[] } = {},
): Field<ObjectOf<P>> {
  const properties: Record<string, JsonSchema> = {};
  const requiredNames: string[] = [];
  for (const [name, f] of Object.entries(props)) {
    properties[name] = f.schema;
    if (f.required) requiredNames.push(name);
  }
  const schema: JsonSchema = { type: 'object', ...(o.description ? { description: o.description } : {}), properties };
  if (requiredNames.length > 0) schema.required = requiredNames;
  if (o.rules && o.rules.length > 0) schema['x-kubernetes-validations'] = o.rules;
  return field(schema);
}

/**
 * An embedded Kubernetes type (affinity, tolerations, env, resources) validated by the API server
 * only where it lands (the pod template); the CRD keeps it as-is.
 */
export function embedded<T>(kind: 'object' | 'array', o: Common = {}): Field<T> {
  if (kind === 'object') return field({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true, ...o });
  return field({ type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }, ...o });
}
