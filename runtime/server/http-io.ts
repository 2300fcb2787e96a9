// Small node:http helpers: bounded body reading, JSON replies, OpenAI error replies, SSE.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

/** How long a client may take to send its whole request body (a slow-loris upload gets 408). */
export const BODY_TIMEOUT_MS = 30_000;

/**
 * Reads the whole body; 413 beyond `limitBytes` (checked on Content-Length first, then while
 * reading), 408 when it has not all arrived within `timeoutMs`.
 */
export function readBody(req: IncomingMessage, limitBytes: number, timeoutMs = BODY_TIMEOUT_MS): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) return Promise.reject(tooLarge(limitBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (error?: ApiError): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      if (error) {
        req.pause();
        reject(error);
      } else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limitBytes) return settle(tooLarge(limitBytes));
      chunks.push(chunk);
    };
    const onEnd = (): void => settle();
    // The client went away mid-upload: nobody will read the answer, but it is their error, not ours.
    const gone = (): void => settle(new ApiError(400, 'the request body could not be read: the client closed the connection', 'invalid_request_error', null, 'incomplete_body'));
    const onGone = (): void => {
      if (!req.complete) gone();
    };
    const timer = setTimeout(() => settle(new ApiError(408, `the request body did not arrive within ${timeoutMs / 1000} s`, 'invalid_request_error', null, 'request_timeout')), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
    // Gone before we started listening: 'close' will not come again.
    if (req.destroyed) gone();
  });
}

/**
 * Reads and drops what is left of a body the server answers without using (an error, a GET route), so
 * the answer is not lost: closing a socket with unread data resets it, and the client may never see a
 * response that was sent. False when the rest is too large or too slow; then close the connection.
 */
export async function discardBody(req: IncomingMessage, limitBytes: number, timeoutMs = BODY_TIMEOUT_MS): Promise<boolean> {
  if (req.complete) return true;
  if (req.destroyed) return false; // the client is gone: nothing to read, nobody to answer
  try {
    await readBody(req, limitBytes, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

const tooLarge = (limitBytes: number): ApiError =>
  new ApiError(413, `the request body is larger than ${limitBytes} bytes`, 'invalid_request_error', null, 'request_too_large');

export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new ApiError(400, `the request body is not valid JSON: ${(cause as Error).message}`, 'invalid_request_error', null, 'invalid_json');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError(400, 'the request body must be a JSON object', 'invalid_request_error', null, 'invalid_json');
  }
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, error: ApiError, headers: Record<string, string> = {}): void {
  const extra = { ...headers };
  if (error.retryAfterSeconds !== undefined) extra['retry-after'] = String(error.retryAfterSeconds);
  sendJson(res, error.status, error.body(), extra);
}

/** How long a streaming client may leave sent data unread before its request is cancelled. */
export const SSE_STALL_TIMEOUT_MS = 30_000;

/**
 * Server-sent events as OpenAI streams them: `data: {json}\n\n`, ending with `data: [DONE]`.
 * Writes respect backpressure: `send` resolves once the socket has taken the event, so a slow reader
 * holds at most one event beyond the stream's buffer here, and the generator feeding the loop waits.
 * A reader that takes nothing for `stallTimeoutMs` is cut off (its request is cancelled, which frees
 * its KV blocks and state slot) rather than left to pile up output.
 */
export class SseWriter {
  constructor(
    private readonly res: ServerResponse,
    private readonly stallTimeoutMs = SSE_STALL_TIMEOUT_MS,
  ) {}

  open(): void {
    // Set (not passed to writeHead) so that what the response is stays readable (tracing records it).
    // No explicit 'connection: keep-alive': it would override a client's 'connection: close', leaving
    // the socket open after the stream until the keep-alive timeout.
    this.res.setHeader('content-type', 'text/event-stream');
    this.res.writeHead(200, { 'cache-control': 'no-cache' });
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  send(data: unknown): Promise<void> {
    return this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** An error after the stream began (the status is already 200): an error event, then the end. */
  sendError(error: ApiError): Promise<void> {
    return this.send(error.body());
  }

  async done(): Promise<void> {
    if (this.closed) return;
    await this.write('data: [DONE]\n\n');
    this.res.end();
  }

  private async write(chunk: string): Promise<void> {
    if (this.closed || this.res.write(chunk)) return;
    await this.drained();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.res.off('drain', finish);
        this.res.off('close', finish);
        resolve();
      };
      const timer = setTimeout(() => {
        this.res.destroy(); // the client read nothing for stallTimeoutMs
        finish();
      }, this.stallTimeoutMs);
      this.res.on('drain', finish);
      this.res.on('close', finish);
    });
  }
}
