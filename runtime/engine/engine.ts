// The engine: requests in, token streams out. Each step is schedule → run → postprocess:
// the scheduler picks this step's sequences and chunks under the token budget, the model runner
// runs them all in one batched forward pass, and postprocessing samples, appends, checks stops,
// streams the new tokens and text out, and frees the state of finished sequences at once.
// The loop runs while there is work, yielding to the event loop between steps so HTTP keeps flowing.
import { randomInt, randomUUID } from 'node:crypto';
import { AsyncQueue } from './async-queue.js';
import { BlockManager } from './block-manager.js';
import type { ModelRunner, SampleResult, SamplingRow, StepSequence } from './model-runner.js';
import { OutputText } from './output-text.js';
import { seedToUint32 } from '../sampling/prng.js';
import { Scheduler, type ScheduledChunk } from './scheduler.js';
import { Sequence, type FinishReason, type SamplingParams } from './sequence.js';
import { StateSlotManager } from './state-slots.js';
import type { DecodeFn } from '../tokenizer/incremental.js';

export interface EngineConfig {
  /** Most sequences running at once (capped by the runner's Mamba state slots). */
  maxNumSeqs: number;
  /** Token budget of one step. */
  maxNumBatchedTokens: number;
  /** Longest prompt + output. */
  maxModelLen: number;
  /** Requests allowed to wait for admission; beyond it new requests are refused. */
  maxWaiting: number;
  /** Consecutive failed steps after which the engine gives up (unhealthy, requests refused). Default 3. */
  maxConsecutiveStepFailures?: number;
  /** A step running longer than this (seconds) makes the engine unhealthy. Default 300. */
  stepStallSeconds?: number;
}

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
}

/** Whether the engine still works; /health reports it so liveness probes restart a wedged process. */
export interface EngineHealth {
  ok: boolean;
  reason?: string;
}

export interface EngineModelInfo {
  eosTokenIds: number[];
}

export interface EngineRequest {
  requestId?: string;
  promptTokenIds: readonly number[];
  params: SamplingParams;
}

export interface GeneratedToken {
  tokenId: number;
  logprob?: number;
  topLogprobs?: TokenLogprob[];
}

/** What one step added to a request. */
export interface RequestOutput {
  requestId: string;
  tokens: GeneratedToken[];
  /** New text (may be '' while a character or a possible stop string is pending). */
  text: string;
  finished: boolean;
  finishReason?: FinishReason;
  stopReason?: string | number;
  numPromptTokens: number;
  numOutputTokens: number;
}

/** When a request passed each phase, in seconds on the performance.now() clock (queue → prefill → decode). */
export interface RequestTimeline {
  arrival: number;
  /** First admitted into a step; undefined if it never ran. */
  scheduled?: number;
  firstToken?: number;
  lastToken?: number;
  finished: number;
}

export interface FinishedRequestStats {
  requestId: string;
  finishReason: FinishReason;
  numPromptTokens: number;
  numOutputTokens: number;
  /** Arrival to first token; undefined when no token came. */
  timeToFirstTokenSeconds?: number;
  /** Mean time between output tokens after the first; undefined with fewer than two tokens. */
  timePerOutputTokenSeconds?: number;
  e2eSeconds: number;
  timeline: RequestTimeline;
}

/** Hooks for metrics; the engine itself knows nothing of Prometheus. */
export interface EngineObserver {
  onPromptTokens?(count: number): void;
  onGenerationTokens?(count: number): void;
  /** Time since the same request's previous token, once per generated token after its first. */
  onInterTokenLatency?(seconds: number): void;
  onRequestFinished?(stats: FinishedRequestStats): void;
  /** A request ended by an engine error (a failed model step), not by the client or a stop condition. */
  onRequestFailed?(stats: FinishedRequestStats, error: Error): void;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  kvUsageRatio: number;
  stateSlotsInUse: number;
  stateSlotsTotal: number;
  /** Sequences preempted (state dropped, recomputed later) for lack of KV blocks, since start. */
  preemptions: number;
  /** Running sequences not scheduled because their readers are behind. */
  pausedForReaders: number;
}

/** A request the engine will not take; `reason` tells the server which HTTP status fits. */
export class RequestRejectedError extends Error {
  constructor(
    readonly reason: 'invalid' | 'overloaded' | 'closed',
    message: string,
    readonly param?: string,
  ) {
    super(message);
    this.name = 'RequestRejectedError';
  }
}

interface Tracked {
  seq: Sequence;
  /** The request's random stream (see counterUniform). */
  seed: number;
  text: OutputText;
  outputs: AsyncQueue<RequestOutput>;
  scheduledAt?: number;
  firstTokenAt?: number;
  lastTokenAt?: number;
}

const now = (): number => performance.now() / 1000;

/**
 * Outputs queued for a reader before its sequence stops being scheduled, and the level at which it
 * resumes: a client that stops reading holds its KV blocks and state slot, not a growing queue.
 */
const PAUSE_AT_QUEUED = 32;
const RESUME_AT_QUEUED = 8;

export class Engine {
  private readonly scheduler: Scheduler;
  private readonly blocks: BlockManager;
  private readonly slots: StateSlotManager;
  private readonly tracked = new Map<Sequence, Tracked>();
  private readonly eos: Set<number>;
  private looping = false;
  private inStep = false;
  private stepStartedAt = 0;
  private consecutiveFailures = 0;
  /** Set when the engine gave up after repeated step failures: it refuses all work from then on. */
  private fatal?: Error;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  readonly maxNumSeqs: number;

  constructor(
    private readonly runner: ModelRunner,
    private readonly decode: DecodeFn,
    info: EngineModelInfo,
    readonly config: EngineConfig,
    private readonly observer: EngineObserver = {},
  ) {
    const g = runner.geometry;
    this.blocks = new BlockManager(g.numBlocks, g.blockSize);
    this.slots = new StateSlotManager(g.numStateSlots, (slot) => runner.resetStateSlot(slot));
    this.maxNumSeqs = Math.min(config.maxNumSeqs, g.numStateSlots);
    this.scheduler = new Scheduler(
      { maxNumSeqs: this.maxNumSeqs, maxNumBatchedTokens: config.maxNumBatchedTokens },
      this.blocks,
      this.slots,
    );
    this.eos = new Set(info.eosTokenIds);
  }

  get vocabSize(): number {
    return this.runner.vocabSize;
  }

  /** Unhealthy once steps keep failing or one step has run past the stall limit. */
  health(): EngineHealth {
    if (this.fatal) return { ok: false, reason: this.fatal.message };
    const stall = this.config.stepStallSeconds ?? 300;
    if (this.inStep && now() - this.stepStartedAt > stall) {
      return { ok: false, reason: `a model step has been running for more than ${stall} s` };
    }
    return { ok: true };
  }

  /** Requests admitted or waiting, not yet finished. */
  get numUnfinished(): number {
    return this.tracked.size;
  }

  stats(): EngineStats {
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waiting.length,
      kvBlocksUsed: this.blocks.numUsedBlocks,
      kvBlocksTotal: this.blocks.numBlocks,
      kvUsageRatio: this.blocks.usageRatio,
      stateSlotsInUse: this.slots.numInUse,
      stateSlotsTotal: this.slots.numSlots,
      preemptions: this.scheduler.numPreemptions,
      pausedForReaders: this.scheduler.running.filter((s) => s.paused).length,
    };
  }

  /**
   * Admits a request (throws RequestRejectedError when it cannot) and streams its outputs step by
   * step. Leaving the loop early (or `signal` aborting) cancels the request and frees its KV blocks
   * and state slot at once, or at the end of the model step it is part of.
   */
  generate(request: EngineRequest, signal?: AbortSignal): AsyncGenerator<RequestOutput> {
    // Admission and the abort hook happen here, synchronously: a refusal is thrown before any
    // output is awaited, and a cancellation frees the state even if the outputs are never read.
    const t = this.add(request);
    const onAbort = (): void => this.abort(t);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) this.abort(t);
    return this.stream(t, () => signal?.removeEventListener('abort', onAbort));
  }

  private async *stream(t: Tracked, cleanup: () => void): AsyncGenerator<RequestOutput> {
    try {
      for await (const out of t.outputs) yield out;
    } finally {
      cleanup();
      if (!t.seq.isFinished) this.abort(t);
    }
  }

  /** Checks a request against the engine's limits; throws RequestRejectedError('invalid') when it can never run. */
  validate(request: EngineRequest): void {
    const { promptTokenIds: prompt, params } = request;
    if (prompt.length === 0) throw new RequestRejectedError('invalid', 'the prompt is empty', 'prompt');
    for (const id of prompt) {
      if (!Number.isInteger(id) || id < 0 || id >= this.runner.vocabSize) {
        throw new RequestRejectedError('invalid', `token id ${id} is outside the vocabulary (0..${this.runner.vocabSize - 1})`, 'prompt');
      }
    }
    const total = prompt.length + params.maxTokens;
    if (total > this.config.maxModelLen) {
      throw new RequestRejectedError(
        'invalid',
        `this model's maximum context length is ${this.config.maxModelLen} tokens; the request has ${prompt.length} prompt tokens and asks for ${params.maxTokens} more (${total})`,
        'max_tokens',
      );
    }
    if (this.blocks.blocksFor(total) > this.blocks.numBlocks) {
      throw new RequestRejectedError('invalid', `the request needs ${this.blocks.blocksFor(total)} KV blocks; the pool has ${this.blocks.numBlocks}`, 'max_tokens');
    }
  }

  private add(request: EngineRequest): Tracked {
    if (this.closed) throw new RequestRejectedError('closed', 'the engine is shut down');
    if (this.fatal) throw new RequestRejectedError('closed', `the engine stopped after repeated failures: ${this.fatal.message}`);
    this.validate(request);
    // Requests that the next step can admit do not count as queued.
    const admissible = Math.max(0, this.maxNumSeqs - this.scheduler.running.length);
    if (this.scheduler.waiting.length >= admissible + this.config.maxWaiting) {
      throw new RequestRejectedError('overloaded', `the server is at capacity (${this.scheduler.waiting.length} requests waiting); retry later`);
    }
    const requestId = request.requestId ?? randomUUID();
    const seq = new Sequence(requestId, request.promptTokenIds, request.params, now());
    const seed = request.params.seed !== undefined ? seedToUint32(request.params.seed) : randomInt(2 ** 32);
    const t: Tracked = {
      seq,
      seed,
      text: new OutputText(this.decode, seq.tokenIds, seq.numPromptTokens, request.params.stop),
      outputs: new AsyncQueue(),
    };
    t.outputs.onTake = (left) => {
      if (seq.paused && left <= RESUME_AT_QUEUED) {
        seq.paused = false;
        this.kick();
      }
    };
    this.tracked.set(seq, t);
    this.scheduler.add(seq);
    this.kick();
    return t;
  }

  private abort(t: Tracked): void {
    if (t.seq.isFinished) return;
    // A sequence inside the running model step keeps its blocks until the step returns.
    if (this.inStep && t.seq.status === 'running') {
      t.seq.abortRequested = true;
      return;
    }
    this.finish(t, 'abort');
  }

  /** Cancels everything (drain timeout, shutdown). */
  abortAll(): void {
    for (const t of [...this.tracked.values()]) this.abort(t);
  }

  /** Resolves when no request is left (or at once if none is). */
  whenIdle(): Promise<void> {
    if (this.tracked.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Refuses new requests, cancels the rest, and waits for the current step to end, unless that step
   * is stalled (it may never end): then its requests are failed at once.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.abortAll();
    if (this.inStep && !this.health().ok) {
      const stalled = new Error('the engine shut down during a stalled model step');
      for (const t of [...this.tracked.values()]) this.fail(t, stalled);
    }
    await this.whenIdle();
  }

  private kick(): void {
    if (this.looping || !this.scheduler.hasWork) return;
    this.looping = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.scheduler.hasWork) {
        await this.step();
        // Let the event loop serve HTTP (new requests, disconnects) between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.looping = false;
    }
    this.kick();
  }

  /** One engine iteration: schedule → run → postprocess. */
  async step(): Promise<void> {
    const batch = this.scheduler.schedule();
    if (batch.length === 0) {
      // Nothing fits although work waits: only possible if the pool is smaller than a request's needs.
      const head = this.scheduler.waiting[0];
      if (head) this.fail(this.tracked.get(head)!, new Error('the request does not fit the KV cache or state pool'));
      return;
    }
    const stepSeqs: StepSequence[] = batch.map(({ seq, numTokens, samples }) => ({
      stateSlot: seq.stateSlot,
      blockTable: Int32Array.from(seq.blockTable),
      cachedLen: seq.numComputedTokens,
      tokens: Int32Array.from(seq.tokenIds.slice(seq.numComputedTokens, seq.numComputedTokens + numTokens)),
      sample: samples ? this.samplingRow(this.tracked.get(seq)!) : undefined,
    }));
    const stepStart = now();
    for (const { seq } of batch) this.tracked.get(seq)!.scheduledAt ??= stepStart;
    this.inStep = true;
    this.stepStartedAt = now();
    let result: SampleResult;
    try {
      result = await this.runner.step(stepSeqs);
    } catch (cause) {
      this.inStep = false;
      this.stepFailed(batch, cause as Error);
      return;
    }
    this.inStep = false;
    this.consecutiveFailures = 0;
    this.postprocess(batch, result);
  }

  private samplingRow(t: Tracked): SamplingRow {
    const p = t.seq.params;
    return {
      temperature: p.temperature,
      topP: p.topP,
      topK: p.topK,
      minP: p.minP ?? 0,
      seed: t.seed,
      counter: t.seq.numOutputTokens,
      logprobs: p.logprobs ?? -1,
    };
  }

  /** Fails the step's requests; after too many failures in a row, every request and the engine itself. */
  private stepFailed(batch: ScheduledChunk[], cause: Error): void {
    const error = new Error(`model step failed: ${cause.message}`, { cause });
    for (const { seq } of batch) {
      const t = this.tracked.get(seq);
      if (t) this.fail(t, error);
    }
    if (++this.consecutiveFailures >= (this.config.maxConsecutiveStepFailures ?? 3)) {
      this.fatal = new Error(`${this.consecutiveFailures} model steps failed in a row; last: ${cause.message}`, { cause });
      for (const t of [...this.tracked.values()]) this.fail(t, this.fatal);
    }
  }

  private postprocess(batch: ScheduledChunk[], result: SampleResult): void {
    let row = 0;
    let promptTokensDone = 0;
    let generated = 0;
    const time = now();
    for (const { seq, numTokens, samples } of batch) {
      seq.numComputedTokens += numTokens;
      const sampled = samples ? row++ : -1;
      const t = this.tracked.get(seq)!;
      if (seq.abortRequested) {
        this.finish(t, 'abort');
        continue;
      }
      if (sampled < 0) continue;
      if (seq.numOutputTokens === 0) promptTokensDone += seq.numPromptTokens;
      const sample = sampleOf(result, sampled);
      seq.tokenIds.push(sample.tokenId);
      generated++;
      if (t.lastTokenAt !== undefined) this.observer.onInterTokenLatency?.(time - t.lastTokenAt);
      t.firstTokenAt ??= time;
      t.lastTokenAt = time;

      const { params } = seq;
      const stopToken = params.stopTokenIds.includes(sample.tokenId) || (!params.ignoreEos && this.eos.has(sample.tokenId));
      const atLength = seq.numOutputTokens >= params.maxTokens || seq.numTokens >= this.config.maxModelLen;
      const stopString = t.text.append(stopToken, stopToken || atLength);
      let finishReason: FinishReason | undefined;
      if (stopToken) {
        finishReason = 'stop';
        if (params.stopTokenIds.includes(sample.tokenId)) seq.stopReason = sample.tokenId;
      } else if (stopString !== undefined) {
        finishReason = 'stop';
        seq.stopReason = stopString;
      } else if (atLength) {
        finishReason = 'length';
      }
      const token: GeneratedToken = { tokenId: sample.tokenId };
      if (params.logprobs !== undefined && sample.logprob !== undefined) {
        token.logprob = sample.logprob;
        token.topLogprobs = sample.topLogprobs;
      }
      t.outputs.push(this.output(t, [token], finishReason));
      if (finishReason) this.finish(t, finishReason, false);
      else if (t.outputs.length >= PAUSE_AT_QUEUED) seq.paused = true;
    }
    if (promptTokensDone > 0) this.observer.onPromptTokens?.(promptTokensDone);
    if (generated > 0) this.observer.onGenerationTokens?.(generated);
    // Sequences cancelled during the step but not part of it.
    for (const t of [...this.tracked.values()]) if (t.seq.abortRequested) this.finish(t, 'abort');
  }

  private output(t: Tracked, tokens: GeneratedToken[], finishReason?: FinishReason): RequestOutput {
    const { seq } = t;
    return {
      requestId: seq.requestId,
      tokens,
      text: t.text.takeDelta(finishReason !== undefined),
      finished: finishReason !== undefined,
      finishReason,
      stopReason: seq.stopReason,
      numPromptTokens: seq.numPromptTokens,
      numOutputTokens: seq.numOutputTokens,
    };
  }

  /** Ends a request: frees its state at once, reports it, closes its stream. */
  private finish(t: Tracked, reason: FinishReason, emit = true): void {
    const { seq } = t;
    seq.finishReason = reason;
    this.scheduler.finish(seq);
    if (emit) t.outputs.push(this.output(t, [], reason));
    t.outputs.close();
    this.forget(t);
    this.observer.onRequestFinished?.(this.statsOf(t, reason));
  }

  private statsOf(t: Tracked, reason: FinishReason): FinishedRequestStats {
    const { seq } = t;
    const end = now();
    const ttft = t.firstTokenAt !== undefined ? t.firstTokenAt - seq.arrivalTime : undefined;
    const tpot =
      seq.numOutputTokens > 1 && t.firstTokenAt !== undefined && t.lastTokenAt !== undefined
        ? (t.lastTokenAt - t.firstTokenAt) / (seq.numOutputTokens - 1)
        : undefined;
    return {
      requestId: seq.requestId,
      finishReason: reason,
      numPromptTokens: seq.numPromptTokens,
      numOutputTokens: seq.numOutputTokens,
      timeToFirstTokenSeconds: ttft,
      timePerOutputTokenSeconds: tpot,
      e2eSeconds: end - seq.arrivalTime,
      timeline: { arrival: seq.arrivalTime, scheduled: t.scheduledAt, firstToken: t.firstTokenAt, lastToken: t.lastTokenAt, finished: end },
    };
  }

  private fail(t: Tracked, error: Error): void {
    this.scheduler.finish(t.seq);
    t.seq.finishReason = 'abort';
    t.outputs.fail(error);
    this.forget(t);
    this.observer.onRequestFailed?.(this.statsOf(t, 'abort'), error);
  }

  private forget(t: Tracked): void {
    this.tracked.delete(t.seq);
    if (this.tracked.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

function sampleOf(result: SampleResult, row: number): { tokenId: number; logprob?: number; topLogprobs?: TokenLogprob[] } {
  const tokenId = result.tokenIds[row]!;
  const logprob = result.logprobs[row]!;
  if (Number.isNaN(logprob)) return { tokenId };
  const topLogprobs: TokenLogprob[] = [];
  for (let j = 0; j < result.topN; j++) {
    const id = result.topIds[row * result.topN + j]!;
    if (id >= 0) topLogprobs.push({ tokenId: id, logprob: result.topLogprobs[row * result.topN + j]! });
  }
  return { tokenId, logprob, topLogprobs };
}
