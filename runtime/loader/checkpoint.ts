// A Hugging Face checkpoint directory: model.safetensors, or shards listed by
// model.safetensors.index.json ({"weight_map": {tensor name: shard file}}). Opening reads only the
// headers; tensor data is read per tensor, a large one in pieces read at once.
import { readSync } from 'node:fs';
import { access, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsHeader, type TensorEntry } from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
/** Bytes of one positional read of a large range; a tensor's pieces are read concurrently. */
export const READ_PIECE = 16 * 1024 * 1024;
export const INDEX_FILE = 'model.safetensors.index.json';

/** A buffer of exactly `bytes` to read into. */
export type AllocateBytes = (bytes: number) => Uint8Array;
/** A new buffer of ordinary memory. */
export const plainBytes: AllocateBytes = (bytes) => Buffer.allocUnsafe(bytes);

export class Checkpoint {
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(
    readonly dir: string,
    /** The file that lists the tensors (the index, or the single safetensors file), for messages. */
    readonly listingFile: string,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
  ) {}

  get totalBytes(): number {
    let total = 0;
    for (const e of this.tensors.values()) total += e.byteLength;
    return total;
  }

  /** Reads one tensor's raw bytes (into a buffer from `allocate` when given). */
  async read(entry: TensorEntry, allocate?: AllocateBytes): Promise<Uint8Array> {
    return this.readParts(entry, [[0, entry.byteLength]], allocate);
  }

  /**
   * Reads byte ranges of one tensor (relative to its first byte), concatenated: a tensor-parallel rank
   * reads only its shard. Few ranges are read asynchronously, cut into READ_PIECE pieces that the thread
   * pool reads at once (one positional read copies from the page cache, or waits on the disk, at one
   * thread's pace); many small ones (a column slice: one per row) with positional reads in a loop, which
   * costs a system call each instead of a promise each. `allocate` gives the buffer to read into (a
   * backend's staging memory); by default a new one.
   */
  async readParts(entry: TensorEntry, parts: readonly (readonly [number, number])[], allocate: AllocateBytes = plainBytes): Promise<Uint8Array> {
    const fh = await this.handle(entry.file);
    const total = parts.reduce((a, [, n]) => a + n, 0);
    const buf = allocate(total);
    if (buf.byteLength !== total) throw new Error(`${entry.file}: tensor ${entry.name}: a read buffer of ${buf.byteLength} bytes for ${total}`);
    const truncated = (): Error => new Error(`${entry.file}: tensor ${entry.name}: truncated file: unexpected end of data`);
    let at = 0;
    if (parts.length <= 8) {
      const pieces: Promise<void>[] = [];
      for (const [start, length] of parts) {
        for (let piece = 0; piece < length; piece += READ_PIECE) {
          const into = at + piece, from = entry.offset + start + piece, size = Math.min(length - piece, READ_PIECE);
          pieces.push(
            (async () => {
              for (let done = 0; done < size; ) {
                const { bytesRead } = await fh.read(buf, into + done, size - done, from + done);
                if (bytesRead === 0) throw truncated();
                done += bytesRead;
              }
            })(),
          );
        }
        at += length;
      }
      await Promise.all(pieces);
      return buf;
    }
    for (const [start, length] of parts) {
      for (let done = 0; done < length; ) {
        const bytesRead = readSync(fh.fd, buf, at + done, length - done, entry.offset + start + done);
        if (bytesRead === 0) throw truncated();
        done += bytesRead;
      }
      at += length;
    }
    return buf;
  }

  private async handle(file: string): Promise<FileHandle> {
    let handle = this.handles.get(file);
    if (!handle) {
      handle = open(file, 'r');
      this.handles.set(file, handle);
    }
    return handle;
  }

  async close(): Promise<void> {
    const handles = [...this.handles.values()];
    this.handles.clear();
    // allSettled: a handle that failed to open must not mask the error that is being reported.
    await Promise.allSettled(handles.map(async (h) => (await h).close()));
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function parseIndex(text: string, indexPath: string): Map<string, string> {
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (cause) {
    throw new Error(`${indexPath}: not valid JSON`, { cause });
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexPath}: weight_map is missing or not an object`);
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new Error(`${indexPath}: weight_map entry for tensor ${name} is not a file name: ${JSON.stringify(shard)}`);
    }
    map.set(name, shard);
  }
  return map;
}

export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const indexPath = join(dir, INDEX_FILE);
  const singlePath = join(dir, SINGLE_FILE);
  const tensors = new Map<string, TensorEntry>();
  if (await exists(indexPath)) {
    const weightMap = parseIndex(await readFile(indexPath, 'utf8'), indexPath);
    const shards = [...new Set(weightMap.values())];
    for (const shard of shards) {
      for (const entry of await readSafetensorsHeader(join(dir, shard))) {
        if (weightMap.get(entry.name) !== shard) {
          throw new Error(`${join(dir, shard)}: tensor ${entry.name} is not listed for this shard in ${indexPath}`);
        }
        tensors.set(entry.name, entry);
      }
    }
    for (const [name, shard] of weightMap) {
      if (!tensors.has(name)) throw new Error(`${join(dir, shard)}: tensor ${name}, listed in ${indexPath}, is not in the file`);
    }
    return new Checkpoint(dir, indexPath, tensors);
  }
  if (await exists(singlePath)) {
    for (const entry of await readSafetensorsHeader(singlePath)) tensors.set(entry.name, entry);
    return new Checkpoint(dir, singlePath, tensors);
  }
  throw new Error(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}`);
}
