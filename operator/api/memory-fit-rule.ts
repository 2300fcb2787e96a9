// Generates the CEL rule that makes the API server refuse a known model that cannot fit its GPUs,
// from sizing.ts's table (never written by hand). CEL sees only the object, so the rule is keyed on
// known model names; unknown names pass (the controller cannot size them either).
import type { CelRule } from './schema-builder.js';
import { CPU_ADVICE, FIT_ADVICE, KNOWN_MODELS, USABLE_PERCENT, sizingOf, type ModelSizing } from './sizing.js';

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

// CEL estimates string(int) as unbounded in size, which blows the cost budget; the message therefore
// embeds the table's figures as string literals and names the spec fields rather than their values.
function weightsGBText(s: ModelSizing): string {
  return `(self.quantization == 'None' ? '${s.weightsGB.None}' : '${s.weightsGB.ExpertsInt8}')`;
}

function inGroup(g: Group): string {
  return `${NAME} in [${g.names.map((n) => `'${n}'`).join(', ')}]`;
}

/** `a ? x : b ? y : fallback` over the groups. */
function chain(groups: Group[], branch: (g: Group) => string, fallback: string): string {
  return groups.reduceRight((rest, g) => `(${inGroup(g)} ? ${branch(g)} : ${rest})`, fallback);
}

const ON_CPU = 'self.gpusPerReplica == 0';

export function memoryFitRule(): CelRule {
  const groups = groupBySizing();
  // On the CPU there is no GPU memory to fit; cpuModelRule speaks for that case.
  const rule = `${ON_CPU} || ${chain(groups, (g) => `${requiredExpr(g.sizing)} <= ${USABLE}`, 'true')}`;
  const messageExpression =
    `'model ' + self.model.name + ' with quantization ' + self.quantization + ' needs ~' + ` +
    `${chain(groups, (g) => weightsGBText(g.sizing), "'?'")} + ' GB of weights + ' + ` +
    `${chain(groups, (g) => `'${g.sizing.kvKiBPerToken}'`, "'?'")} + ' KiB of KV cache per token of maxContextLength, ' + ` +
    `'more than ${USABLE_PERCENT}% of gpusPerReplica × gpu.minMemoryMiB; ${FIT_ADVICE}'`;
  return {
    rule,
    message: `the model does not fit the GPUs of one replica; ${FIT_ADVICE}`,
    messageExpression,
    reason: 'FieldValueInvalid',
  };
}

/** Refuses a known (published, tens of GB or more) model on the CPU backend, saying why. */
export function cpuModelRule(): CelRule {
  const groups = groupBySizing();
  const known = groups.map(inGroup).join(' || ');
  return {
    rule: `!(${ON_CPU} && (${known}))`,
    message: `the model is too large for the CPU backend; ${CPU_ADVICE}`,
    messageExpression:
      `'model ' + self.model.name + ' with quantization ' + self.quantization + ' needs ~' + ` +
      `${chain(groups, (g) => weightsGBText(g.sizing), "'?'")} + ' GB of weights, too large for the CPU backend; ${CPU_ADVICE}'`,
    reason: 'FieldValueInvalid',
  };
}
