// The tensor-parallel collectives on the GPU (runtime/native/src/collective.cu), exact: 2 and 3 ranks
// as contexts on one device (JAMBA_COLLECTIVE_DEVICES, default all on device 0), each step a chain of
// all-reduces over the same tensor (so generations and buffer halves cycle), fp32 and bf16, sizes from
// one row to several exchange-buffer pieces, and the column gather of logits. Every rank must hold
// exactly the fp32 sums in rank order that JavaScript computes with Math.fround.
import type { StepInputs } from '../../runtime/backends/backend.js';
import { CudaBackend } from '../../runtime/backends/cuda/index.js';
import { createGroup } from '../../runtime/backends/cuda/native.js';
import { randomWindow } from '../../runtime/backends/testing.js';

/** Exchange buffer half of 64 KiB: 16384 floats, so the larger cases run in several pieces. */
const EXCHANGE_BYTES = 64 * 1024;
const CHAIN = 24;

const oneRowStep = (rows: number): StepInputs => ({
  batch: { numRows: rows, segments: [{ rowStart: 0, numRows: rows, cachedLen: 0, stateSlot: 0, blockTable: new Int32Array(0) }] },
  tokenIds: new Int32Array(rows),
  sampleRows: new Int32Array(0),
  sampling: [],
});

/** Rank r's starting values: small integers and fractions, different on every rank. */
const start = (rank: number, n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.fround((((i * 7 + rank * 13) % 29) - 14) / 8 + rank * 0.001));

function bf16Round(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = (u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000;
  return f[0]!;
}

function bf16Bytes(values: Float32Array): Uint8Array {
  const f = Float32Array.from(values, bf16Round);
  const words = new Uint32Array(f.buffer);
  return new Uint8Array(Uint16Array.from(words, (w) => w >>> 16).buffer);
}

/** What every rank should hold after `CHAIN` all-reduces: fp32 sums in rank order, rounded to the dtype after each. */
function expected(starts: Float32Array[], bf16: boolean): Float32Array {
  const round = bf16 ? bf16Round : Math.fround;
  let values = starts.map((s) => Float32Array.from(s, round));
  for (let k = 0; k < CHAIN; k++) {
    const sum = values[0]!.map((_, i) => round(values.reduce((acc, v) => Math.fround(acc + v[i]!), 0)));
    values = values.map(() => sum);
  }
  return values[0]!;
}

/**
 * NCCL at one rank (all a one-GPU machine allows): loads libnccl, makes a communicator and runs
 * all-reduces through it (JAMBA_NCCL_MIN_BYTES=0), which must leave the tensor as it was.
 */
async function checkNcclBinding(say: (ok: boolean, line: string) => void): Promise<void> {
  // The backend records collectives only when its shard says there are other ranks; its group has one.
  const b = await CudaBackend.open(0, { shard: { rank: 0, size: 2 } });
  try {
    await createGroup([b.context], EXCHANGE_BYTES, { nccl: true });
    const values = start(0, 3 * 4096);
    const t = b.upload(values, [3, 4096]);
    b.beginStep(oneRowStep(3));
    for (let k = 0; k < CHAIN; k++) b.allReduce(t);
    await b.completeStep();
    const got = await b.download(t);
    const ok = got.every((v, i) => v === values[i]);
    say(ok, `collectives: NCCL at one rank, ${CHAIN} all-reduces of [3, 4096] f32: ${ok ? 'unchanged, as it must be' : 'changed'}`);
  } catch (error) {
    say(false, `collectives: NCCL at one rank: ${(error as Error).stack}`);
  } finally {
    b.dispose();
  }
}

/** Random weights: the device's fill gives randomAt's values (bf16-rounded) at a shard's window of the full matrix. */
async function checkRandomWindows(say: (ok: boolean, line: string) => void): Promise<void> {
  const b = await CudaBackend.open(0);
  try {
    const window = { fullCols: 500, rowRanges: [[3, 20], [40, 60]] as const, colStart: 100 };
    const got = await b.download(b.randomMatrix([37, 300], 0.02, 0x5eed + 17, window));
    const want = randomWindow(37, 300, 0.02, 0x5eed + 17, window).map(bf16Round);
    const wrong = got.findIndex((v, i) => v !== want[i]);
    say(wrong < 0, `random weights: a [37, 300] window of a [*, 500] matrix made on the device equals randomAt's values${wrong < 0 ? '' : `: first difference at ${wrong} (${got[wrong]} vs ${want[wrong]})`}`);
  } finally {
    b.dispose();
  }
}

export async function checkCollectives(say: (ok: boolean, line: string) => void): Promise<void> {
  await checkRandomWindows(say);
  if (process.env['JAMBA_NCCL_MIN_BYTES'] === '0') await checkNcclBinding(say);
  // Ranks sharing a device meet on the host unless asked to use the device barrier, which ranks on
  // distinct devices use: both, on the one GPU there is.
  for (const [size, deviceSync] of [[2, false], [3, false], [2, true], [3, true]] as const) {
    const sync = deviceSync ? 'device barrier' : 'host barrier';
    const devices = (process.env['JAMBA_COLLECTIVE_DEVICES'] ?? '').split(',').filter(Boolean).map(Number);
    const ranks = await Promise.all(Array.from({ length: size }, (_, rank) => CudaBackend.open(devices[rank] ?? 0, { shard: { rank, size }, devicePeers: size })));
    try {
      await createGroup(ranks.map((r) => r.context), EXCHANGE_BYTES, { nccl: false, deviceSync });
      for (const [rows, cols] of [[1, 96], [7, 4096], [40, 4096]] as const) {
        for (const bf16 of [false, true]) {
          const n = rows * cols;
          const starts = ranks.map((_, r) => start(r, n));
          const tensors = ranks.map((b, r) => (bf16 ? b.uploadMatrix({ dtype: 'BF16', bytes: bf16Bytes(starts[r]!) }, [rows, cols]) : b.upload(starts[r]!, [rows, cols])));
          await Promise.all(
            ranks.map((b, r) => {
              b.beginStep(oneRowStep(rows));
              for (let k = 0; k < CHAIN; k++) b.allReduce(tensors[r]!);
              return b.completeStep();
            }),
          );
          const want = expected(starts, bf16);
          const got = await Promise.all(ranks.map((b, r) => b.download(tensors[r]!)));
          const wrong = got.map((g) => g.findIndex((v, i) => v !== want[i]));
          say(wrong.every((w) => w < 0), `collectives: ${size} ranks (${sync}), ${CHAIN} all-reduces of [${rows}, ${cols}] ${bf16 ? 'bf16' : 'f32'}: ${wrong.every((w) => w < 0) ? 'exact on every rank' : `first mismatch per rank at ${wrong.join(', ')}`}`);
        }
      }
      // The logits gather: [rows, cols] per rank → [rows, size·cols], rank r's at columns r·cols.
      const [rows, cols] = [5, 8192];
      const starts = ranks.map((_, r) => start(r, rows * cols));
      const gathered = await Promise.all(
        ranks.map(async (b, r) => {
          const t = b.upload(starts[r]!, [rows, cols]);
          b.beginStep(oneRowStep(rows));
          const out = b.allGatherColumns(t);
          const values = b.download(out);
          return values;
        }),
      );
      const ok = gathered.every((g) => g.every((v, i) => v === starts[Math.floor((i % (size * cols)) / cols)]![Math.floor(i / (size * cols)) * cols + (i % cols)]));
      for (const b of ranks) b.endStep();
      say(ok, `collectives: ${size} ranks (${sync}), column gather of [${rows}, ${cols}] f32: ${ok ? 'exact on every rank' : 'wrong'}`);
    } catch (error) {
      say(false, `collectives: ${size} ranks (${sync}): ${(error as Error).stack}`);
    } finally {
      for (const b of ranks) b.dispose();
    }
  }
}
