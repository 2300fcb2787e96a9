// Writes a sharded bf16 safetensors checkpoint at a preset's real tensor shapes with its first N layers
// (config.json, model.safetensors.index.json, shards, and the preset's synthetic tokenizer), for the
// loading benchmark: `jamba-runtime serve --model DIR --backend cuda --quantization expertsint8` then
// reads it the real way. Values are random bf16 of moderate magnitude, streamed to disk shard by shard.
//   node dist/tools/gpu/write-checkpoint.js --preset jamba-1.5-mini --layers 8 --dir /tmp/mini-8l [--shard-gb 4]
import { randomFillSync } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseJambaConfig } from '../../runtime/models/config.js';
import { PRESETS } from '../../runtime/models/presets.js';
import { jambaTensorSpecs, type TensorSpec } from '../../runtime/models/weights.js';
import { syntheticTokenizer } from '../../runtime/tokenizer/synthetic.js';

const CHUNK = 64 * 2 ** 20;

/** Random bf16 bits with a fixed exponent (|v| in [2^-7, 2^-6)): finite, moderate, fast to make. */
function fillBf16(buf: Buffer): void {
  randomFillSync(buf);
  const h = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength >> 1);
  for (let i = 0; i < h.length; i++) h[i] = (h[i]! & 0x807f) | 0x3c00;
}

function header(specs: TensorSpec[]): Buffer {
  const h: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const s of specs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * 2;
    h[s.name] = { dtype: 'BF16', shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(h);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([len, body]);
}

async function writeShard(file: string, specs: TensorSpec[]): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.write(header(specs));
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const s of specs) {
      for (let left = s.shape.reduce((a, b) => a * b, 1) * 2; left > 0; ) {
        const n = Math.min(left, CHUNK);
        const part = buf.subarray(0, n);
        fillBf16(part);
        await fh.write(part);
        left -= n;
      }
    }
  } finally {
    await fh.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { preset: { type: 'string', default: 'jamba-1.5-mini' }, layers: { type: 'string' }, dir: { type: 'string' }, 'shard-gb': { type: 'string', default: '4' } } });
  const fields = PRESETS[values.preset!];
  if (!fields || !values.dir) throw new Error('usage: write-checkpoint --preset NAME [--layers N] --dir DIR [--shard-gb G]');
  const config: Record<string, unknown> = { ...fields, ...(values.layers ? { num_hidden_layers: Number(values.layers) } : {}), torch_dtype: 'bfloat16' };
  const specs = jambaTensorSpecs(parseJambaConfig(JSON.stringify(config), 'preset'));
  await mkdir(values.dir, { recursive: true });
  const shardBytes = Number(values['shard-gb']) * 1e9;
  const shards: TensorSpec[][] = [[]];
  let size = 0;
  for (const s of specs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * 2;
    if (size > 0 && size + bytes > shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(s);
    size += bytes;
  }
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const t0 = performance.now();
  for (let i = 0; i < shards.length; i++) await writeShard(join(values.dir, names[i]!), shards[i]!);
  const total = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1) * 2, 0);
  const weightMap = Object.fromEntries(shards.flatMap((specsOfShard, i) => specsOfShard.map((s) => [s.name, names[i]!])));
  await writeFile(join(values.dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  await writeFile(join(values.dir, 'config.json'), JSON.stringify(config, null, 2));
  const { tokenizer, config: tokenizerConfig } = syntheticTokenizer(config['vocab_size'] as number);
  await writeFile(join(values.dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  await writeFile(join(values.dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  process.stdout.write(`wrote ${(total / 1e9).toFixed(1)} GB in ${shards.length} shards to ${values.dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

await main();
