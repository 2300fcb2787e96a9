// Applies the schema's defaults the way the API server does (a missing field with a default gets it,
// then defaults inside it apply too). The controller runs on server-defaulted objects; this lets
// tests and tools build the same objects from a minimal spec.
import { specField, type JambaDeploymentSpec } from './jambadeployment.js';
import type { JsonSchema } from './schema-builder.js';

function applySchemaDefaults(value: unknown, schema: JsonSchema): unknown {
  if (schema.type !== 'object' || !schema.properties || value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [name, prop] of Object.entries(schema.properties)) {
    if (out[name] === undefined && prop.default !== undefined) out[name] = structuredClone(prop.default);
    if (out[name] !== undefined) out[name] = applySchemaDefaults(out[name], prop);
  }
  return out;
}

/** A spec as the API server stores it, from what a user wrote. */
export function withSpecDefaults(spec: unknown): JambaDeploymentSpec {
  return applySchemaDefaults(spec, specField.schema) as JambaDeploymentSpec;
}
