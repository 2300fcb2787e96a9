// Generates the CEL rule that makes the API server refuse a known model that cannot fit its GPUs,
// from sizing.ts's table (never written by hand). CEL sees only the object, so the rule is keyed on
// known model names; unknown names pass (the controller cannot size them either).
import type { CelRule } from './schema-builder.js';
import { KNOWN_MODELS, USABLE_PERCENT, sizingOf, type ModelSizing } from './sizing.js';

interface Group {
  names: string[];
  sizing: ModelSizing;
}

/** Models with identical figures share one branch, which keeps the rule short and cheap. */
export function groupBySizing(): Group[] {
  const groups = new Map<string, Group>();
  for (const [name, shape] of Object.entries(KNOWN_MODELS)) {
    const sizing = sizingOf(shape);
    const key = JSON.stringify(sizing);
    const g = groups.get(key) ?? { names: [], sizing };
    g.names.push(name);
    groups.set(key, g);
  }
  return [...groups.values()];
}

const NAME = 'self.model.name.lowerAscii()';
const USABLE = `self.gpusPerReplica * self.gpu.minMemoryMiB * ${USABLE_PERCENT} / 100`;

function requiredExpr(s: ModelSizing): string {
  return (
    `((self.quantization == 'None' ? ${s.weightsMiB.None} : ${s.weightsMiB.ExpertsInt8})` +
    ` + ${s.kvKiBPerToken} * self.maxContextLength / 1024 + ${s.mambaStateMiB})`
  );
}

function weightsGBExpr(s: ModelSizing): string {
  return `(self.quantization == 'None' ? ${s.weightsGB.None} : ${s.weightsGB.ExpertsInt8})`;
}

function inGroup(g: Group): string {
  return `${NAME} in [${g.names.map((n) => `'${n}'`).join(', ')}]`;
}

/** `a ? x : b ? y : fallback` over the groups. */
function chain(groups: Group[], branch: (g: Group) => string, fallback: string): string {
  return groups.reduceRight((rest, g) => `(${inGroup(g)} ? ${branch(g)} : ${rest})`, fallback);
}

export function memoryFitRule(): CelRule {
  const groups = groupBySizing();
  const rule = chain(groups, (g) => `${requiredExpr(g.sizing)} <= ${USABLE}`, 'true');
  const messageExpression =
    `'model ' + self.model.name + ' with quantization ' + self.quantization + ' needs ~' + ` +
    `string(${chain(groups, (g) => weightsGBExpr(g.sizing), '0')}) + ' GB of weights, ~' + ` +
    `string(${chain(groups, (g) => requiredExpr(g.sizing), '0')}) + ` +
    `' MiB with the KV cache for maxContextLength ' + string(self.maxContextLength) + '; ' + ` +
    `string(self.gpusPerReplica) + ' GPUs × ' + string(self.gpu.minMemoryMiB) + ' MiB leave ' + ` +
    `string(${USABLE}) + ' MiB usable (${USABLE_PERCENT}%); use quantization ExpertsInt8, more gpusPerReplica, ` +
    `GPUs with more memory (gpu.minMemoryMiB) or a smaller maxContextLength'`;
  return {
    rule,
    message:
      'the model does not fit the GPUs of one replica; use quantization ExpertsInt8, more gpusPerReplica, ' +
      'GPUs with more memory (gpu.minMemoryMiB) or a smaller maxContextLength',
    messageExpression,
    reason: 'FieldValueInvalid',
  };
}
