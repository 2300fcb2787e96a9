// What the engine needs from the model side.
export { loadModel } from './load.js';
export { parseJambaConfig, layerMixer, layerFeedForward, type JambaConfig } from './config.js';
export { JambaModel } from './jamba.js';
export type {
  CacheGeometry,
  LoadedModel,
  LoadOptions,
  LoadProgress,
  ModelRunner,
  Quantization,
  StepSequence,
} from '../engine/model-runner.js';
