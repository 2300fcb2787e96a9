// Checks of a step's ragged-batch descriptor against the rows of an op's input.
import type { RaggedBatch } from '../backend.js';

export function checkBatch(batch: RaggedBatch, rows: number, op: string): void {
  if (batch.numRows !== rows) throw new Error(`${op}: batch has ${batch.numRows} rows, input has ${rows}`);
  let next = 0;
  for (const seg of batch.segments) {
    if (seg.rowStart !== next) throw new Error(`${op}: segment starts at row ${seg.rowStart}, expected ${next}`);
    next += seg.numRows;
  }
  if (next !== rows) throw new Error(`${op}: segments cover ${next} rows of ${rows}`);
}
