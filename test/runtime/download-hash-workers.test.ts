// The download's hashing threads: several files share fewer threads than there are files, each file's
// digest is its own, an aborted file does not disturb the others, and a file that cannot be read fails.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HashWorkers } from '../../runtime/download/hash-worker.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'jamba-hash-workers-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fileOf(name: string, bytes: number): Promise<{ path: string; data: Buffer }> {
  const data = randomBytes(bytes);
  const p = path.join(dir, name);
  await writeFile(p, data);
  return { path: p, data };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('five files on two threads: each gets its own digest, as its bytes arrive in steps', async () => {
  const files = await Promise.all([0, 1, 2, 3, 4].map((i) => fileOf(`f${i}`, (9 << 20) + i * 4099)));
  const pool = new HashWorkers(2);
  try {
    const hashes = files.map((f) => pool.open(f.path, 'sha256'));
    expect(pool.started).toBe(2);
    // Interleaved progress, as parallel downloads report it.
    for (let at = 1 << 20; at < 9 << 20; at += 1 << 20) hashes.forEach((h) => h.advance(at));
    const results = await Promise.all(hashes.map((h, i) => h.finish(files[i]!.data.length)));
    results.forEach((r, i) => expect(r).toEqual({ digest: sha256(files[i]!.data), hashedBytes: files[i]!.data.length }));
  } finally {
    await pool.close();
  }
  expect(pool.started).toBe(0);
});

test('a git blob id (sha1 with its header) and a sha256 on the same thread', async () => {
  const f = await fileOf('blob', 100_003);
  const pool = new HashWorkers(1);
  try {
    const header = `blob ${f.data.length}\0`;
    const blob = pool.open(f.path, 'sha1', header);
    const lfs = pool.open(f.path, 'sha256');
    expect(pool.started).toBe(1);
    const [b, l] = await Promise.all([blob.finish(f.data.length), lfs.finish(f.data.length)]);
    expect(b.digest).toBe(createHash('sha1').update(header).update(f.data).digest('hex'));
    expect(l.digest).toBe(sha256(f.data));
  } finally {
    await pool.close();
  }
});

test('an aborted file leaves the thread to the others; a file that cannot be read fails with its path', async () => {
  const [a, b] = await Promise.all([fileOf('a', 3 << 20), fileOf('b', 3 << 20)]);
  const pool = new HashWorkers(1);
  try {
    const dropped = pool.open(a.path, 'sha256');
    const kept = pool.open(b.path, 'sha256');
    await dropped.abort();
    expect(await kept.finish(b.data.length)).toEqual({ digest: sha256(b.data), hashedBytes: b.data.length });
    const missing = path.join(dir, 'missing');
    await expect(pool.open(missing, 'sha256').finish(10)).rejects.toThrow(`hashing ${missing}: ENOENT`);
    // The thread survives a file's failure.
    expect(pool.started).toBe(1);
    expect((await pool.open(a.path, 'sha256').finish(a.data.length)).digest).toBe(sha256(a.data));
  } finally {
    await pool.close();
  }
});

test('a thread that dies fails the files it was hashing, and the next file gets a new thread', async () => {
  const f = await fileOf('c', 1 << 20);
  const pool = new HashWorkers(1);
  try {
    const first = pool.open(f.path, 'sha256');
    await pool.close(); // the thread is terminated under it
    await expect(first.finish(f.data.length)).rejects.toThrow(/hashing .*: the hashing thread exited/);
    expect(pool.started).toBe(0);
    expect((await pool.open(f.path, 'sha256').finish(f.data.length)).digest).toBe(sha256(f.data));
  } finally {
    await pool.close();
  }
});
