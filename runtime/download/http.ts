// HTTP for the Hub (body-client.ts: the API's answers and file bodies): redirects followed by hand (so
// the token never leaves the Hub's origin and each hop is retried on its own), and 429 / 5xx / network
// errors retried with exponential backoff and jitter, honouring Retry-After.
import { setTimeout as sleep } from 'node:timers/promises';
import { BodyClient, discardSink, textSink, type BodyController, type BodySink, type ResponseHeaders } from './body-client.js';
import { DownloadError } from './errors.js';

export interface RetryPolicy {
  /** Attempts per request without progress (a response that delivered bytes resets the count). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest Retry-After honoured; longer ones are capped (the attempt still counts). */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: 300_000 };

export interface HttpOptions {
  token?: string;
  retry: RetryPolicy;
  /** A response body silent this long is abandoned and retried. */
  idleTimeoutMs: number;
  /** Connections per origin. */
  connections: number;
  userAgent: string;
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
}

// Socket errors worth another attempt (body-client.ts raises its own as retryable DownloadErrors).
const RETRYABLE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED']);

export function isRetryableNetworkError(error: unknown): boolean {
  if (error instanceof DownloadError) return error.retryable;
  const e = error as { code?: string; cause?: { code?: string } };
  return RETRYABLE_CODES.has(e.code ?? '') || RETRYABLE_CODES.has(e.cause?.code ?? '');
}

function header(headers: ResponseHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After as milliseconds (seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function backoffMs(policy: RetryPolicy, attempt: number, random = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

export class HubHttp {
  private readonly bodies: BodyClient;

  constructor(readonly options: HttpOptions) {
    this.bodies = new BodyClient({ idleTimeoutMs: options.idleTimeoutMs, keepAliveMs: 30_000, maxIdlePerOrigin: options.connections });
  }

  async close(): Promise<void> {
    await this.bodies.close();
  }

  /** A GET whose whole answer (up to `limit` bytes) comes back as text, following redirects: the API's JSON. */
  async getText(url: string, headers: Record<string, string>, limit = 64 * 1024 * 1024): Promise<Received & { body: string }> {
    const scratch = Buffer.allocUnsafe(64 * 1024);
    const parts: Buffer[] = [];
    let size = 0;
    const answer = await this.receive(url, headers, {
      start: () => {},
      space: () => scratch,
      filled: (n) => {
        size += n;
        if (size > limit) throw new DownloadError('HttpError', `${url}: answer over ${limit} bytes`);
        parts.push(Buffer.from(scratch.subarray(0, n)));
      },
      end: () => {},
    });
    return { ...answer, body: answer.text ?? Buffer.concat(parts).toString('utf8') };
  }

  /**
   * A GET whose 2xx body goes to `body` (read straight into the buffers it provides: body-client.ts),
   * following redirects (the token only to the first URL's origin). Resolves when the body has ended;
   * an answer other than 2xx resolves with its (short) text instead, for `failureOf`.
   */
  async receive(url: string, headers: Record<string, string>, body: BodyReceiver): Promise<Received> {
    const origin = new URL(url).origin;
    let current = url;
    for (let hop = 0; hop <= 10; hop++) {
      const target = new URL(current);
      let location: string | undefined;
      let text: ReturnType<typeof textSink> | undefined;
      let started = false;
      try {
        const answer = await this.bodies.get(target, {
          'user-agent': this.options.userAgent,
          ...headers,
          ...(target.origin === origin && this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        }, (status, h, controller) => {
          location = REDIRECTS.has(status) ? header(h, 'location') : undefined;
          if (location !== undefined) return discardSink();
          if (status < 200 || status >= 300) return (text = textSink(4096));
          body.start(status, h, controller);
          started = true;
          return body;
        });
        if (location === undefined) return { statusCode: answer.statusCode, headers: answer.headers, url: current, ...(text ? { text: text.text() } : {}) };
      } finally {
        if (started) body.end();
      }
      current = new URL(location, current).toString();
    }
    throw new DownloadError('HttpError', `too many redirects from ${url}`);
  }

  /**
   * Runs `attempt` until it succeeds, retrying retryable failures with backoff. `attempt` reports
   * whether it made progress (received bytes), which resets the attempt count.
   */
  async withRetry<T>(what: string, attempt: (progress: () => void) => Promise<T>): Promise<T> {
    const p = this.options.retry;
    for (let failures = 0; ;) {
      let progressed = false;
      try {
        return await attempt(() => { progressed = true; });
      } catch (error) {
        if (progressed) failures = 0;
        failures++;
        const retryable = error instanceof RetryableStatus || isRetryableNetworkError(error);
        if (!retryable || failures >= p.attempts) {
          if (error instanceof RetryableStatus) {
            throw new DownloadError('HttpError', `${what}: HTTP ${error.status} after ${failures} attempt(s)${error.detail ? `: ${error.detail}` : ''}`);
          }
          if (retryable) throw new DownloadError('NetworkError', `${what}: ${(error as Error).message} after ${failures} attempt(s)`);
          throw error;
        }
        const after = error instanceof RetryableStatus ? error.retryAfterMs : undefined;
        const delayMs = after !== undefined ? Math.min(after, p.maxRetryAfterMs) : backoffMs(p, failures);
        this.options.onRetry?.({ url: what, attempt: failures, delayMs, reason: error instanceof RetryableStatus ? `HTTP ${error.status}` : (error as Error).message });
        await sleep(delayMs);
      }
    }
  }
}

/** Takes a 2xx response body: its bytes are read into the buffers `space()` provides. */
export interface BodyReceiver extends BodySink {
  /** A 2xx answer's status and headers; throwing refuses it (the request fails with that error). */
  start(statusCode: number, headers: ResponseHeaders, controller: BodyController): void;
  /** The body ended or failed: no more bytes, and the controller must not be resumed. */
  end(): void;
}

export interface Received {
  statusCode: number;
  headers: ResponseHeaders;
  /** The URL that answered, after redirects. */
  url: string;
  /** The body of an answer other than 2xx (up to 4 kB), undefined for 2xx. */
  text?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** A 429 or 5xx answer, to be retried. */
export class RetryableStatus extends Error {
  constructor(readonly status: number, readonly retryAfterMs: number | undefined, readonly detail?: string) {
    super(`HTTP ${status}`);
  }
}

/**
 * Turns a non-success answer into the error it means, reading the Hub's X-Error-Code: 429/5xx are
 * retryable, missing repositories, revisions and files and gated repositories get their own codes.
 */
export function failureOf(res: Received, what: string, hasToken: boolean): Error {
  const text = (res.text ?? '').slice(0, 500);
  const code = header(res.headers, 'x-error-code');
  const message = header(res.headers, 'x-error-message') ?? text;
  const s = res.statusCode;
  if (s === 429 || s >= 500) return new RetryableStatus(s, retryAfterMs(header(res.headers, 'retry-after')), message);
  if (code === 'GatedRepo') {
    return new DownloadError('GatedRepo', hasToken
      ? `${what}: the repository is gated and the token (HF_TOKEN) was refused: accept its conditions on the Hub with the token's account (${message})`
      : `${what}: the repository is gated: set HF_TOKEN to a token of an account that accepted its conditions (${message})`);
  }
  if (code === 'RepoNotFound') {
    return new DownloadError('RepoNotFound', `${what}: repository not found${hasToken ? '' : ' (if it is private, set HF_TOKEN)'}`);
  }
  if (code === 'RevisionNotFound') return new DownloadError('RevisionNotFound', `${what}: revision not found (${message})`);
  if (code === 'EntryNotFound') return new DownloadError('EntryNotFound', `${what}: file not found (${message})`);
  if (s === 401 || s === 403) {
    return new DownloadError('Unauthorized', `${what}: HTTP ${s}${hasToken ? ': the token (HF_TOKEN) was refused' : ': authentication needed, set HF_TOKEN'}${message ? ` (${message})` : ''}`);
  }
  if (s === 404) return new DownloadError('RepoNotFound', `${what}: not found (HTTP 404)`);
  return new DownloadError('HttpError', `${what}: HTTP ${s}${message ? `: ${message}` : ''}`);
}
