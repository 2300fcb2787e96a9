// A Hugging Face Hub protocol server for tests and benchmarks, on loopback: two origins like the real
// Hub (the API/"hub" origin, and a "CDN" origin that LFS files redirect to), real sha256 and git blob ids,
// Range requests, gated repositories, and faults injected per request (429 + Retry-After, 5xx, a
// connection cut mid-body, a corrupted byte, a slow or stalled origin). Files are streamed from disk.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface HubRepoSpec {
  /** "org/name". */
  id: string;
  /** Directory whose files (recursively) are the repository's files at every revision it has. */
  dir: string;
  /** Branch or tag names answering besides the commit sha; default ['main']. */
  refs?: string[];
  /** Gated: file downloads need `Authorization: Bearer <token>` with this token. */
  gatedToken?: string;
}

export type Origin = 'hub' | 'cdn';

/** One fault, applied to the next `times` requests that match. */
export interface HubFault {
  kind: 'status' | 'cut' | 'corrupt' | 'slow' | 'stall';
  /** Which requests: origin, and a substring of the request path (e.g. a file name). */
  origin?: Origin;
  pathIncludes?: string;
  /** Only requests carrying a Range header (parallel chunks) or only those without. */
  ranged?: boolean;
  times?: number;
  /** Matching requests let through untouched before the fault applies. */
  skip?: number;
  /** status: the status code (429, 500, 503, ...). */
  status?: number;
  /** status: the Retry-After header, seconds. */
  retryAfterSeconds?: number;
  /** cut: body bytes sent before the socket is destroyed. */
  afterBytes?: number;
  /** corrupt: which byte of the file (absolute offset) is flipped, when the response covers it. */
  offset?: number;
  /** slow: throughput cap of the response body. */
  bytesPerSecond?: number;
  /** stall: body bytes sent before the response stops sending (the socket stays open). */
  stallAfterBytes?: number;
}

export interface HubRequestRecord {
  origin: Origin;
  method: string;
  path: string;
  range?: string;
  authorization?: string;
  status: number;
  fault?: HubFault['kind'];
}

interface HubFile {
  rfilename: string;
  absPath: string;
  size: number;
  blobId: string;
  sha256: string;
  lfs: boolean;
}

interface HubRepo {
  spec: HubRepoSpec;
  commit: string;
  files: HubFile[];
}

export interface HubServer {
  /** HF_ENDPOINT value. */
  endpoint: string;
  cdnUrl: string;
  requests: HubRequestRecord[];
  /** Adds faults; each is consumed as matching requests arrive. */
  inject(...faults: HubFault[]): void;
  /** Faults not yet consumed. */
  pendingFaults(): HubFault[];
  clearFaults(): void;
  repo(id: string): { commit: string; files: readonly HubFile[] };
  close(): Promise<void>;
}

/** Files the Hub stores in LFS (by .gitattributes on real repositories): weights and anything large. */
export function isLfsFile(name: string, size: number): boolean {
  return /\.(safetensors|bin|pt|pth|gguf|h5|msgpack|onnx)$/.test(name) || size >= 10 * 1024 * 1024;
}

/** Git's blob id: sha1 over "blob <size>\0" and the content. */
async function hashFile(file: string, size: number): Promise<{ sha256: string; blobId: string }> {
  const sha256 = createHash('sha256');
  const sha1 = createHash('sha1').update(`blob ${size}\0`);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    sha256.update(chunk as Buffer);
    sha1.update(chunk as Buffer);
  }
  return { sha256: sha256.digest('hex'), blobId: sha1.digest('hex') };
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}

async function loadRepo(spec: HubRepoSpec): Promise<HubRepo> {
  const files: HubFile[] = [];
  for (const rfilename of await listFiles(spec.dir)) {
    const absPath = path.join(spec.dir, rfilename);
    const { size } = await stat(absPath);
    const { sha256, blobId } = await hashFile(absPath, size);
    files.push({ rfilename, absPath, size, sha256, blobId, lfs: isLfsFile(rfilename, size) });
  }
  const commit = createHash('sha1').update(spec.id).update(files.map((f) => `${f.rfilename} ${f.blobId}`).join('\n')).digest('hex');
  return { spec, commit, files };
}

/** Parses `bytes=a-b` / `bytes=a-` against a size; undefined when absent, 'invalid' when unsatisfiable. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | 'invalid' {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'invalid';
  return { start, end };
}

/** Whether a request's Range (none: the whole file) includes byte `offset`: a corruption is spent only where it lands. */
function covers(range: string | undefined, offset: number): boolean {
  const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range.trim()) : undefined;
  if (!range) return true;
  return !!m && Number(m[1]) <= offset && (m[2] === '' || offset <= Number(m[2]));
}

/** Applies body faults to a byte stream starting at file offset `start`. */
class FaultStream extends Transform {
  private sent = 0;
  constructor(private readonly fault: HubFault | undefined, private readonly start: number, private readonly onCut: () => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const f = this.fault;
    if (f?.kind === 'corrupt') {
      const at = (f.offset ?? 0) - (this.start + this.sent);
      if (at >= 0 && at < chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[at] = chunk[at]! ^ 0xff;
      }
    }
    if (f?.kind === 'cut' || f?.kind === 'stall') {
      const limit = (f.kind === 'cut' ? f.afterBytes : f.stallAfterBytes) ?? 0;
      const room = limit - this.sent;
      if (room <= 0) return f.kind === 'cut' ? this.onCut() : undefined; // stall: never call done
      if (chunk.length > room) {
        this.sent += room;
        this.push(chunk.subarray(0, room));
        if (f.kind === 'cut') setImmediate(() => this.onCut());
        return;
      }
    }
    this.sent += chunk.length;
    if (f?.kind === 'slow' && f.bytesPerSecond) {
      // In small slices, so the client sees a steady trickle rather than bursts.
      const slice = 16 * 1024;
      const delay = (Math.min(slice, chunk.length) / f.bytesPerSecond) * 1000;
      const send = (off: number): void => {
        if (off >= chunk.length) return done();
        this.push(chunk.subarray(off, off + slice));
        setTimeout(() => send(off + slice), delay);
      };
      setTimeout(() => send(0), delay);
      return;
    }
    done(null, chunk);
  }
}

function encodePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

export interface HubServerOptions {
  /** Address to bind and to put in URLs (the CDN redirect); default 127.0.0.1. */
  host?: string;
  /**
   * The CDN's address. Like the Hub's CDN, it must be another host, not only another port:
   * huggingface_hub follows a resolve's redirect to the same host name when it asks for a file's metadata
   * and then finds no X-Repo-Commit there. Default: 127.0.0.2 for a host of 127.0.0.1 (Linux answers on
   * all of 127/8; where 127.0.0.2 cannot be bound, 127.0.0.1), else the host.
   */
  cdnHost?: string;
  hubPort?: number;
  cdnPort?: number;
  /** Keep a record of every request (tests read it); off for long benchmark runs. */
  recordRequests?: boolean;
}

export async function startHubServer(repos: HubRepoSpec[], options: HubServerOptions = {}): Promise<HubServer> {
  const host = options.host ?? '127.0.0.1';
  const loaded = new Map<string, HubRepo>();
  for (const spec of repos) loaded.set(spec.id, await loadRepo(spec));
  const faults: (HubFault & { left: number; skipLeft: number })[] = [];
  const requests: HubRequestRecord[] = [];
  let hubUrl = '';
  let cdnUrl = '';

  const takeFault = (origin: Origin, req: IncomingMessage): HubFault | undefined => {
    const i = faults.findIndex((f) =>
      (f.origin === undefined || f.origin === origin) &&
      (f.pathIncludes === undefined || decodeURIComponent(req.url ?? '').includes(f.pathIncludes)) &&
      (f.ranged === undefined || f.ranged === (req.headers.range !== undefined)) &&
      (f.kind !== 'corrupt' || covers(req.headers.range, f.offset ?? 0)));
    if (i < 0) return undefined;
    const f = faults[i]!;
    if (f.skipLeft > 0) {
      f.skipLeft--;
      return undefined;
    }
    if (--f.left <= 0) faults.splice(i, 1);
    return f;
  };

  const record = (origin: Origin, req: IncomingMessage, status: number, fault?: HubFault): void => {
    if (options.recordRequests === false) return;
    requests.push({
      origin, method: req.method ?? 'GET', path: req.url ?? '', status,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(fault ? { fault: fault.kind } : {}),
    });
  };

  const error = (res: ServerResponse, status: number, code: string, message: string): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code, 'x-error-message': message });
    res.end(JSON.stringify({ error: message }));
  };

  /** Answers an injected status fault (429, 5xx); false when `fault` is not one. */
  const statusFault = (origin: Origin, req: IncomingMessage, res: ServerResponse, fault: HubFault | undefined): boolean => {
    if (fault?.kind !== 'status') return false;
    record(origin, req, fault.status ?? 500, fault);
    res.writeHead(fault.status ?? 500, fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {});
    res.end('injected fault');
    return true;
  };

  const findRepo = (org: string, name: string) => loaded.get(`${decodeURIComponent(org)}/${decodeURIComponent(name)}`);
  /** The repository when it exists and has the revision; otherwise answers the Hub's error and returns undefined. */
  const knownRevision = (req: IncomingMessage, res: ServerResponse, org: string, name: string, rev: string): HubRepo | undefined => {
    const repo = findRepo(org, name);
    if (!repo) {
      record('hub', req, 401);
      error(res, 401, 'RepoNotFound', 'Repository not found');
      return undefined;
    }
    if (rev !== repo.commit && !(repo.spec.refs ?? ['main']).includes(rev)) {
      record('hub', req, 404);
      error(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      return undefined;
    }
    return repo;
  };

  /** Sends a file (or the requested range of it) with the body faults of `fault` applied. */
  const sendFile = (req: IncomingMessage, res: ServerResponse, file: HubFile, etag: string, fault: HubFault | undefined, headers: Record<string, string> = {}): void => {
    const range = parseRange(req.headers.range, file.size);
    if (range === 'invalid') {
      res.writeHead(416, { 'content-range': `bytes */${file.size}` });
      res.end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: file.size - 1 };
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'accept-ranges': 'bytes', etag: `"${etag}"`, 'content-length': String(end - start + 1), 'content-type': 'application/octet-stream',
      ...(range ? { 'content-range': `bytes ${start}-${end}/${file.size}` } : {}),
    });
    if (req.method === 'HEAD' || file.size === 0) {
      res.end();
      return;
    }
    const source = createReadStream(file.absPath, { start, end, highWaterMark: 1 << 20 });
    if (!fault || fault.kind === 'status') {
      source.pipe(res);
      return;
    }
    const faulty = new FaultStream(fault, start, () => res.socket?.destroy());
    pipeline(source, faulty, res).catch(() => res.socket?.destroy());
  };

  const handleHub = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', hubUrl);
    const fault = takeFault('hub', req);
    if (statusFault('hub', req, res, fault)) return;
    let m = /^\/api\/models\/([^/]+)\/([^/]+)(?:\/revision\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      const repo = knownRevision(req, res, m[1]!, m[2]!, decodeURIComponent(m[3] ?? 'main'));
      if (!repo) return;
      const blobs = url.searchParams.get('blobs') === 'true';
      const siblings = repo.files.map((f) =>
        blobs
          ? { rfilename: f.rfilename, blobId: f.blobId, size: f.size, ...(f.lfs ? { lfs: { sha256: f.sha256, size: f.size, pointerSize: 134 } } : {}) }
          : { rfilename: f.rfilename });
      record('hub', req, 200);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        _id: repo.commit.slice(0, 24), id: repo.spec.id, modelId: repo.spec.id, sha: repo.commit, private: false,
        gated: repo.spec.gatedToken ? 'manual' : false, disabled: false, siblings,
      }));
      return;
    }
    // The tree listing (huggingface_hub's snapshot_download uses it): entries under a path, recursive on request.
    m = /^\/api\/models\/([^/]+)\/([^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(url.pathname);
    if (m) {
      const repo = knownRevision(req, res, m[1]!, m[2]!, decodeURIComponent(m[3]!));
      if (!repo) return;
      const under = m[4] ? `${decodeURIComponent(m[4]).replace(/\/$/, '')}/` : '';
      const recursive = url.searchParams.get('recursive') === 'true';
      const entries: unknown[] = [];
      const dirs = new Set<string>();
      for (const f of repo.files.filter((x) => x.rfilename.startsWith(under))) {
        const rest = f.rfilename.slice(under.length);
        const parts = rest.split('/');
        for (let i = 1; i < parts.length && (recursive || i === 1); i++) dirs.add(under + parts.slice(0, i).join('/'));
        if (!recursive && parts.length > 1) continue;
        entries.push({ type: 'file', oid: f.blobId, size: f.size, path: f.rfilename, ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}) });
      }
      for (const d of dirs) entries.push({ type: 'directory', oid: createHash('sha1').update(d).digest('hex'), size: 0, path: d });
      record('hub', req, 200);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(entries));
      return;
    }
    m = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) {
      record('hub', req, 404);
      return error(res, 404, 'NotFound', 'not found');
    }
    const rev = decodeURIComponent(m[3]!);
    const rfilename = m[4]!.split('/').map(decodeURIComponent).join('/');
    const repo = knownRevision(req, res, m[1]!, m[2]!, rev);
    if (!repo) return;
    if (repo.spec.gatedToken && req.headers.authorization !== `Bearer ${repo.spec.gatedToken}`) {
      const status = req.headers.authorization ? 403 : 401;
      record('hub', req, status);
      return error(res, status, 'GatedRepo', `Access to model ${repo.spec.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
    }
    const file = repo.files.find((f) => f.rfilename === rfilename);
    if (!file) {
      record('hub', req, 404);
      return error(res, 404, 'EntryNotFound', `${rfilename} does not exist on "${rev}"`);
    }
    const common = { 'x-repo-commit': repo.commit, 'x-linked-size': String(file.size) };
    if (file.lfs) {
      // Like the Hub: LFS files redirect to a signed CDN URL on another origin.
      record('hub', req, 302);
      res.writeHead(302, { ...common, 'x-linked-etag': `"${file.sha256}"`, etag: `"${file.sha256}"`, location: `${cdnUrl}/repos/${encodePath(repo.spec.id)}/${file.sha256}?X-Signature=test&name=${encodeURIComponent(rfilename)}` });
      res.end();
      return;
    }
    record('hub', req, req.headers.range ? 206 : 200, fault);
    sendFile(req, res, file, file.blobId, fault, common);
  };

  const handleCdn = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', cdnUrl);
    const fault = takeFault('cdn', req);
    if (statusFault('cdn', req, res, fault)) return;
    const m = /^\/repos\/(.+)\/([0-9a-f]{64})$/.exec(url.pathname);
    const repo = m ? loaded.get(decodeURIComponent(m[1]!)) : undefined;
    const file = repo?.files.find((f) => f.lfs && f.sha256 === m![2]);
    if (!file) {
      record('cdn', req, 404);
      res.writeHead(404);
      res.end();
      return;
    }
    const range = parseRange(req.headers.range, file.size);
    record('cdn', req, range === 'invalid' ? 416 : range ? 206 : 200, fault);
    sendFile(req, res, file, file.sha256, fault);
  };

  const listen = async (handler: (req: IncomingMessage, res: ServerResponse) => void, port: number, at: string): Promise<{ server: Server; url: string }> => {
    const server = createServer(handler);
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, at, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return { server, url: `http://${at.includes(':') ? `[${at}]` : at}:${(server.address() as AddressInfo).port}` };
  };
  const hub = await listen(handleHub, options.hubPort ?? 0, host);
  const listenCdn = async (): Promise<{ server: Server; url: string }> => {
    if (options.cdnHost !== undefined || host !== '127.0.0.1') return listen(handleCdn, options.cdnPort ?? 0, options.cdnHost ?? host);
    try {
      return await listen(handleCdn, options.cdnPort ?? 0, '127.0.0.2');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw err;
      return listen(handleCdn, options.cdnPort ?? 0, host);
    }
  };
  const cdn = await listenCdn().catch(async (err: unknown) => {
    await new Promise((resolve) => hub.server.close(resolve));
    throw err;
  });
  hubUrl = hub.url;
  cdnUrl = cdn.url;

  return {
    endpoint: hubUrl,
    cdnUrl,
    requests,
    inject: (...fs) => faults.push(...fs.map((f) => ({ ...f, left: f.times ?? 1, skipLeft: f.skip ?? 0 }))),
    clearFaults: () => void faults.splice(0),
    pendingFaults: () => faults.map(({ left: _left, skipLeft: _skip, ...f }) => f),
    repo: (id) => {
      const r = loaded.get(id);
      if (!r) throw new Error(`no repository ${id}`);
      return { commit: r.commit, files: r.files };
    },
    close: async () => {
      for (const s of [hub.server, cdn.server]) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}
