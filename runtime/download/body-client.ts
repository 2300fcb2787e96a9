// HTTP/1.1 GETs whose bodies are read straight into buffers the caller provides (the `onread` option
// of net and tls sockets): the kernel copies each socket read into the batch that is later written to
// disk. undici hands over a fresh Buffer per socket read (64 KiB) and first copies every byte into its
// parser's memory; over 1 GiB that cost ~0.9 CPU-s of the download's ~4 on the benchmark machine, most
// of it allocation and the garbage collections that churn triggers (docs/BENCHMARKS.md, issue 12).
// Only what the downloader needs (the Hub's API and file bodies): GET, keep-alive connections per
// origin, an idle timeout; not loading undici also saves the download command ~0.1 CPU-s of start-up.
// Bodies with a Content-Length take the direct path; chunked and close-delimited bodies (error pages,
// small files from some servers) are read into the connection's own buffer and copied out.
import net from 'node:net';
import tls from 'node:tls';
import { DownloadError } from './errors.js';

export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** Where a response's body goes, piece by piece. */
export interface BodySink {
  /** Where the next bytes go (not empty); stays valid until `filled` is called. */
  space(): Buffer;
  /** `n` bytes were stored at the start of the last `space()`. */
  filled(n: number): void;
}

export interface BodyController {
  /** Stops reading from the connection (the server is held back by TCP flow control). */
  pause(): void;
  resume(): void;
  /** Fails the request with `reason` (the connection is closed). */
  abort(reason: Error): void;
}

/** Chooses the sink for a response once its head has arrived; throwing fails the request with that error. */
export type OnHead = (statusCode: number, headers: ResponseHeaders, controller: BodyController) => BodySink;

export interface BodyClientOptions {
  /** A connection silent this long (waiting for the head or inside a body) fails its request. */
  idleTimeoutMs: number;
  /** An unused keep-alive connection is closed after this long. */
  keepAliveMs: number;
  /** Unused connections kept per origin. */
  maxIdlePerOrigin: number;
}

/** A sink that drops everything (redirect bodies). */
export function discardSink(): BodySink {
  const scratch = Buffer.allocUnsafe(16 * 1024);
  return { space: () => scratch, filled: () => {} };
}

/** A sink that keeps the first `limit` bytes as text (error pages). */
export function textSink(limit: number): BodySink & { text(): string } {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  const scratch = Buffer.allocUnsafe(16 * 1024);
  return {
    space: () => scratch,
    filled: (n) => {
      if (keptBytes < limit) kept.push(Buffer.from(scratch.subarray(0, Math.min(n, limit - keptBytes))));
      keptBytes += n;
    },
    text: () => Buffer.concat(kept).toString('utf8'),
  };
}

const HEAD_BUFFER_BYTES = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

function parseHead(text: string): { statusCode: number; headers: ResponseHeaders; http10: boolean } {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
  if (!status) throw new DownloadError('NetworkError', `malformed HTTP status line: ${JSON.stringify((lines[0] ?? '').slice(0, 100))}`, true);
  const headers: ResponseHeaders = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers[name];
    headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return { statusCode: Number(status[2]), headers, http10: status[1] === '0' };
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** Copies `bytes` into the sink. */
function deliver(sink: BodySink, bytes: Buffer): void {
  for (let off = 0; off < bytes.length;) {
    const space = sink.space();
    const n = bytes.copy(space, 0, off, Math.min(bytes.length, off + space.length));
    sink.filled(n);
    off += n;
  }
}

/** One request on a connection: the head, then the body by its framing. */
interface Exchange {
  onHead: OnHead;
  resolve: (r: { statusCode: number; headers: ResponseHeaders }) => void;
  reject: (e: Error) => void;
  head?: { statusCode: number; headers: ResponseHeaders; http10: boolean };
  sink?: BodySink;
  framing?: 'length' | 'chunked' | 'close';
  /** Body bytes still to come ('length'), or of the current chunk ('chunked'). */
  remaining: number;
  chunkState: 'size' | 'data' | 'data-end' | 'trailer';
  keepAlive: boolean;
}

class Connection {
  readonly socket: net.Socket;
  /** Heads and framed bodies are read here; `ownFill` bytes of it are unconsumed. */
  private readonly own = Buffer.allocUnsafe(HEAD_BUFFER_BYTES);
  private ownFill = 0;
  /** Whether the read in progress goes into `own` (else into the sink's space). */
  private readingOwn = true;
  private exchange?: Exchange;
  private closed = false;

  constructor(readonly key: string, url: URL, private readonly options: BodyClientOptions, private readonly onFree: (c: Connection) => void) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const onread: net.OnReadOpts = { buffer: () => this.nextBuffer(), callback: (n) => this.onRead(n) };
    // tls.connect takes `onread` like net.connect (Node passes it to the socket), though @types/node omits it.
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = { host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], onread };
    this.socket = url.protocol === 'https:' ? tls.connect(tlsOptions) : net.connect({ host, port, onread });
    this.socket.setTimeout(options.idleTimeoutMs);
    // Flowing, so that the end of the stream is seen (reads still go only where `onread` says).
    this.socket.resume();
    this.socket.on('timeout', () => {
      if (this.exchange) this.socket.destroy(new DownloadError('NetworkError', `no data for ${options.idleTimeoutMs} ms`, true));
      else this.socket.destroy();
    });
    this.socket.on('error', (e) => this.fail(e));
    this.socket.on('end', () => this.onEof());
    this.socket.on('close', () => {
      this.closed = true;
      this.fail(new DownloadError('NetworkError', 'the connection closed before the response ended', true));
    });
  }

  get usable(): boolean {
    return !this.closed && !this.socket.destroyed && !this.exchange;
  }

  request(path: string, hostHeader: string, headers: Record<string, string>, onHead: OnHead): Promise<{ statusCode: number; headers: ResponseHeaders }> {
    let head = `GET ${path} HTTP/1.1\r\nhost: ${hostHeader}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    return new Promise((resolve, reject) => {
      this.exchange = { onHead, resolve, reject, remaining: 0, chunkState: 'size', keepAlive: false };
      this.socket.ref();
      this.socket.setTimeout(this.options.idleTimeoutMs);
      this.socket.write(`${head}connection: keep-alive\r\n\r\n`);
    });
  }

  /** Where the next socket read goes: straight into the sink inside a Content-Length body, else `own`. */
  private nextBuffer(): Buffer {
    const x = this.exchange;
    if (x?.sink && x.framing === 'length' && x.remaining > 0) {
      this.readingOwn = false;
      const space = x.sink.space();
      return space.length > x.remaining ? space.subarray(0, x.remaining) : space;
    }
    this.readingOwn = true;
    if (this.ownFill === this.own.length) {
      // Only a head can fill `own` (framed bodies are consumed as they arrive).
      this.socket.destroy(new DownloadError('NetworkError', `response head over ${HEAD_BUFFER_BYTES} bytes`, true));
      return this.own;
    }
    return this.own.subarray(this.ownFill);
  }

  /** Always true: pausing is the receiver's (`BodyController.pause`). */
  private onRead(n: number): true {
    this.handleRead(n);
    return true;
  }

  private handleRead(n: number): void {
    const x = this.exchange;
    if (!x) {
      this.socket.destroy(); // bytes nobody asked for: the connection cannot be trusted
      return;
    }
    try {
      if (!this.readingOwn) {
        x.remaining -= n;
        x.sink!.filled(n);
        if (x.remaining === 0) this.complete();
        return;
      }
      this.ownFill += n;
      this.consumeOwn();
    } catch (e) {
      this.socket.destroy(e as Error);
    }
  }

  /** Parses what `own` holds: the head, then body bytes by the response's framing. */
  private consumeOwn(): void {
    const x = this.exchange!;
    let off = 0;
    if (!x.head) {
      const end = this.own.subarray(0, this.ownFill).indexOf(HEAD_END);
      if (end < 0) return;
      x.head = parseHead(this.own.toString('latin1', 0, end));
      off = end + HEAD_END.length;
      if (x.head.statusCode >= 100 && x.head.statusCode < 200) {
        x.head = undefined; // an interim answer (100 Continue): the real one follows
        this.shift(off);
        this.consumeOwn();
        return;
      }
      this.startBody(x);
    }
    const sink = x.sink!;
    while (this.exchange === x && off < this.ownFill) {
      if (x.framing === 'length' || x.framing === 'close') {
        const n = x.framing === 'length' ? Math.min(x.remaining, this.ownFill - off) : this.ownFill - off;
        deliver(sink, this.own.subarray(off, off + n));
        off += n;
        x.remaining -= n;
        if (x.framing === 'length' && x.remaining === 0) this.complete();
        continue;
      }
      const used = this.chunked(x, sink, off);
      if (used === off) break; // a partial line: wait for more
      off = used;
    }
    this.shift(off);
    if (this.exchange !== x && this.ownFill > 0) this.socket.destroy(); // bytes after the response: not reusable
  }

  /** One step of a chunked body from `own[off]`; returns the new offset. */
  private chunked(x: Exchange, sink: BodySink, off: number): number {
    if (x.chunkState === 'data') {
      const n = Math.min(x.remaining, this.ownFill - off);
      deliver(sink, this.own.subarray(off, off + n));
      x.remaining -= n;
      if (x.remaining === 0) x.chunkState = 'data-end';
      return off + n;
    }
    const eol = this.own.subarray(off, this.ownFill).indexOf(CRLF);
    if (eol < 0) return off;
    const line = this.own.toString('latin1', off, off + eol);
    const next = off + eol + CRLF.length;
    if (x.chunkState === 'data-end') {
      if (line !== '') throw new DownloadError('NetworkError', 'malformed chunked body (no line end after a chunk)', true);
      x.chunkState = 'size';
    }
    else if (x.chunkState === 'size') {
      const size = parseInt(line, 16);
      if (!Number.isFinite(size) || size < 0) throw new DownloadError('NetworkError', `malformed chunk size ${JSON.stringify(line.slice(0, 40))}`, true);
      x.remaining = size;
      x.chunkState = size === 0 ? 'trailer' : 'data';
    } else if (line === '') this.complete(); // the empty line after the trailers
    return next;
  }

  private shift(off: number): void {
    if (off > 0) this.own.copyWithin(0, off, this.ownFill);
    this.ownFill -= off;
  }

  private startBody(x: Exchange): void {
    const { statusCode, headers, http10 } = x.head!;
    // Only while this exchange is on the connection: afterwards it may be serving another request.
    const controller: BodyController = {
      pause: () => { if (this.exchange === x) this.socket.pause(); },
      resume: () => { if (this.exchange === x) this.socket.resume(); },
      abort: (reason) => { if (this.exchange === x) this.socket.destroy(reason); },
    };
    x.sink = x.onHead(statusCode, headers, controller);
    const length = single(headers['content-length']);
    const chunked = /chunked/i.test(single(headers['transfer-encoding']) ?? '');
    x.keepAlive = !http10 && !/close/i.test(single(headers.connection) ?? '');
    if (statusCode === 204 || statusCode === 304) [x.framing, x.remaining] = ['length', 0];
    else if (chunked) x.framing = 'chunked';
    else if (length !== undefined && /^\d+$/.test(length)) [x.framing, x.remaining] = ['length', Number(length)];
    else [x.framing, x.keepAlive] = ['close', false];
    if (x.framing === 'length' && x.remaining === 0) this.complete();
  }

  private complete(): void {
    const x = this.exchange!;
    this.exchange = undefined;
    x.resolve({ statusCode: x.head!.statusCode, headers: x.head!.headers });
    if (!x.keepAlive) {
      this.socket.destroy();
      return;
    }
    this.socket.setTimeout(this.options.keepAliveMs);
    this.socket.unref();
    // The receiver may have paused the connection as the body ended; an idle one reads (into `own`) so
    // that a close by the server is seen before the connection is reused.
    if (this.socket.isPaused()) this.socket.resume();
    this.onFree(this);
  }

  private onEof(): void {
    const x = this.exchange;
    if (x?.framing === 'close') this.complete();
    this.socket.destroy();
  }

  private fail(e: Error): void {
    const x = this.exchange;
    this.exchange = undefined;
    this.closed = true;
    x?.reject(e);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Keep-alive HTTP/1.1 connections per origin for body downloads. */
export class BodyClient {
  private readonly idle = new Map<string, Connection[]>();
  private readonly open = new Set<Connection>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;

  constructor(private readonly options: BodyClientOptions) {}

  /** A GET of `url`; resolves with the status and headers once the body has gone to the sink `onHead` chose. */
  async get(url: URL, headers: Record<string, string>, onHead: OnHead): Promise<{ statusCode: number; headers: ResponseHeaders }> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DownloadError('HttpError', `unsupported URL ${url.toString()}`);
    if (this.closed) throw new DownloadError('HttpError', 'the HTTP client is closed');
    for (const [name, value] of Object.entries(headers)) {
      if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new DownloadError('HttpError', `invalid header ${name}`);
    }
    const key = `${url.protocol}//${url.host}`;
    const idle = this.idle.get(key) ?? [];
    let c = idle.pop();
    while (c && !c.usable) c = idle.pop();
    c ??= this.connect(key, url);
    const answer = c.request(`${url.pathname}${url.search}`, url.host, headers, onHead);
    const settled = answer.catch(() => {});
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return answer;
  }

  private connect(key: string, url: URL): Connection {
    const c = new Connection(key, url, this.options, (free) => {
      const list = this.idle.get(free.key) ?? [];
      if (list.length >= this.options.maxIdlePerOrigin) free.close();
      else this.idle.set(free.key, [...list.filter((x) => x.usable), free]);
    });
    this.open.add(c);
    c.socket.on('close', () => this.open.delete(c));
    return c;
  }

  /** Refuses new requests, lets those in flight finish (as undici's Agent.close does), then closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.inFlight);
    for (const c of this.open) c.close();
    this.idle.clear();
  }
}
