// Small node:http helpers: bounded body reading, JSON replies, OpenAI error replies, SSE.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

/** Reads the whole body; 413 beyond `limitBytes` (checked on Content-Length first, then while reading). */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const tooLarge = (): ApiError =>
    new ApiError(413, `the request body is larger than ${limitBytes} bytes`, 'invalid_request_error', null, 'request_too_large');
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limitBytes) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (cause) {
    if (cause instanceof ApiError) throw cause;
    // The client went away mid-upload: nobody will read the answer, but it is their error, not ours.
    throw new ApiError(400, `the request body could not be read: ${(cause as Error).message}`, 'invalid_request_error', null, 'incomplete_body');
  }
  return Buffer.concat(chunks);
}

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
    this.res.setHeader('content-type', 'text/event-stream');
    this.res.writeHead(200, { 'cache-control': 'no-cache', connection: 'keep-alive' });
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
