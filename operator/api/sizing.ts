// The one memory-fit estimate for Jamba models. The CRD's CEL rule is generated from this table
// (so the API server refuses what cannot fit) and the controller uses the same numbers in status.
//
// Facts (docs: /work/shared/DESIGN.md §1–2):
//   - Mini 52B parameters, Large 398B; checkpoints are bf16 (2 bytes/parameter).
//   - ExpertsInt8 stores MoE expert and dense-MLP weights as int8 (≈93% of parameters), the rest bf16;
//     per-channel scales are negligible.
//   - KV cache exists only in attention layers (1 in 8): 16 KiB/token Mini, 36 KiB/token Large.
//   - Mamba state per sequence: conv state (bf16) + SSM state (fp32) per Mamba layer, ~15 MiB for Mini.
//
// The estimate: weights + KV cache for one sequence of maxContextLength + its Mamba state must fit in
// USABLE_PERCENT of gpusPerReplica × gpu.minMemoryMiB (the rest: CUDA context, activations, fragmentation).
// All arithmetic is integer so the CEL rule and this module agree exactly.

export type Quantization = 'ExpertsInt8' | 'None';

export const MIB = 1024 * 1024;
export const USABLE_PERCENT = 90;
/** Share of parameters that ExpertsInt8 stores as int8 (experts + dense MLPs). */
export const INT8_PARAMETER_SHARE = 0.93;

interface Shape {
  parameters: number;
  layers: number;
  hidden: number;
  attnLayerPeriod: number;
  dConv: number;
  dState: number;
  expand: number;
  kvBytesPerToken: number;
}

const MINI: Shape = {
  parameters: 52e9, layers: 32, hidden: 4096, attnLayerPeriod: 8, dConv: 4, dState: 16, expand: 2,
  kvBytesPerToken: 16 * 1024,
};
const LARGE: Shape = {
  parameters: 398e9, layers: 72, hidden: 8192, attnLayerPeriod: 8, dConv: 4, dState: 16, expand: 2,
  kvBytesPerToken: 36 * 1024,
};

/** Model names (as served, lower-cased) whose size we know; unknown names are not checked. */
export const KNOWN_MODELS: Readonly<Record<string, Shape>> = {
  'ai21labs/ai21-jamba-1.5-mini': MINI,
  'ai21labs/ai21-jamba-1.5-large': LARGE,
  'ai21labs/ai21-jamba-mini-1.6': MINI,
  'ai21labs/ai21-jamba-large-1.6': LARGE,
  'ai21labs/ai21-jamba-mini-1.7': MINI,
  'ai21labs/ai21-jamba-large-1.7': LARGE,
};

export function weightBytes(parameters: number, quantization: Quantization): number {
  if (quantization === 'None') return parameters * 2;
  return parameters * (INT8_PARAMETER_SHARE * 1 + (1 - INT8_PARAMETER_SHARE) * 2);
}

export function mambaStateBytesPerSequence(s: Shape): number {
  const mambaLayers = s.layers - s.layers / s.attnLayerPeriod;
  const dInner = s.hidden * s.expand;
  const convBytes = dInner * (s.dConv - 1) * 2; // bf16
  const ssmBytes = dInner * s.dState * 4; // fp32
  return mambaLayers * (convBytes + ssmBytes);
}

/** Integer figures per model, the exact numbers the CEL rule embeds. */
export interface ModelSizing {
  weightsMiB: Record<Quantization, number>;
  weightsGB: Record<Quantization, number>;
  kvKiBPerToken: number;
  mambaStateMiB: number;
}

export function sizingOf(s: Shape): ModelSizing {
  const q = (quant: Quantization) => weightBytes(s.parameters, quant);
  return {
    weightsMiB: { ExpertsInt8: Math.ceil(q('ExpertsInt8') / MIB), None: Math.ceil(q('None') / MIB) },
    weightsGB: { ExpertsInt8: Math.round(q('ExpertsInt8') / 1e9), None: Math.round(q('None') / 1e9) },
    kvKiBPerToken: s.kvBytesPerToken / 1024,
    mambaStateMiB: Math.ceil(mambaStateBytesPerSequence(s) / MIB),
  };
}

export function knownSizing(modelName: string): ModelSizing | undefined {
  const shape = KNOWN_MODELS[modelName.toLowerCase()];
  return shape ? sizingOf(shape) : undefined;
}

export interface FitInput {
  modelName: string;
  quantization: Quantization;
  maxContextLength: number;
  gpusPerReplica: number;
  minMemoryMiB: number;
}

export interface FitResult {
  /** False only for a known model that cannot fit; unknown models are assumed to fit. */
  fits: boolean;
  /** gpusPerReplica 0: the CPU backend, which serves no known (published, large) model. */
  cpu: boolean;
  known: boolean;
  requiredMiB?: number;
  usableMiB: number;
  weightsGB?: number;
}

export function usableMiB(gpusPerReplica: number, minMemoryMiB: number): number {
  return Math.floor((gpusPerReplica * minMemoryMiB * USABLE_PERCENT) / 100);
}

export function requiredMiB(m: ModelSizing, quantization: Quantization, maxContextLength: number): number {
  return m.weightsMiB[quantization] + Math.floor((m.kvKiBPerToken * maxContextLength) / 1024) + m.mambaStateMiB;
}

export function checkFit(i: FitInput): FitResult {
  const usable = usableMiB(i.gpusPerReplica, i.minMemoryMiB);
  const cpu = i.gpusPerReplica === 0;
  const m = knownSizing(i.modelName);
  if (!m) return { fits: true, cpu, known: false, usableMiB: usable };
  const required = requiredMiB(m, i.quantization, i.maxContextLength);
  return { fits: !cpu && required <= usable, cpu, known: true, requiredMiB: required, usableMiB: usable, weightsGB: m.weightsGB[i.quantization] };
}

export const CPU_ADVICE =
  'the CPU backend (gpusPerReplica: 0) is for small checkpoints in development and tests; set gpusPerReplica to 1, 2, 4 or 8';

/** The API server's sentence for a known model on the CPU (the CEL messageExpression builds the same text). */
export function cpuSentence(i: Pick<FitInput, 'modelName' | 'quantization'>, m: ModelSizing): string {
  return `model ${i.modelName} with quantization ${i.quantization} needs ~${m.weightsGB[i.quantization]} GB of weights, ` +
    `too large for the CPU backend; ${CPU_ADVICE}`;
}

export const FIT_ADVICE =
  'use quantization ExpertsInt8, more gpusPerReplica, GPUs with more memory (gpu.minMemoryMiB) or a smaller maxContextLength';

/** The sentence the API server returns (the CEL messageExpression builds the same text). */
export function fitSentence(i: FitInput, m: ModelSizing): string {
  return (
    `model ${i.modelName} with quantization ${i.quantization} needs ~${m.weightsGB[i.quantization]} GB of weights + ` +
    `${m.kvKiBPerToken} KiB of KV cache per token of maxContextLength, more than ${USABLE_PERCENT}% of ` +
    `gpusPerReplica × gpu.minMemoryMiB; ${FIT_ADVICE}`
  );
}

/** For status: the API server's sentence plus this spec's figures. */
export function fitMessage(i: FitInput, r: FitResult): string {
  const m = knownSizing(i.modelName);
  if (!m) return `model ${i.modelName} has no known size`;
  if (r.cpu) return cpuSentence(i, m);
  return `${fitSentence(i, m)} (~${r.requiredMiB} MiB needed at maxContextLength ${i.maxContextLength}; ` +
    `${i.gpusPerReplica} GPUs × ${i.minMemoryMiB} MiB leave ${r.usableMiB} MiB usable)`;
}
