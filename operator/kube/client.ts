// A small JSON client for the Kubernetes API over node:https, authenticated from a KubeConfig.
// Every request of the operator (informer lists included) goes through `request`, so one hook
// counts them all (the benchmark's "API requests per reconcile").
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { createSecureContext } from 'node:tls';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../controller/labels.js';

export class ApiError extends Error {
  constructor(message: string, readonly statusCode: number, readonly body?: unknown, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ApiError';
  }
}

export function isNotFound(e: unknown): boolean {
  return e instanceof ApiError && e.statusCode === 404;
}
export function isConflict(e: unknown): boolean {
  return e instanceof ApiError && e.statusCode === 409;
}

/** The request got no answer: the connection failed, or no reply came before its deadline. */
export class TransportError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TransportError';
  }
}

/**
 * A failure that says nothing about the request itself, only about the moment: no answer (TransportError),
 * the API server overloaded or failing (429, 5xx), or this process no longer leading. A retry is what it
 * calls for, not a verdict in the status.
 */
export function isTransient(e: unknown): boolean {
  if (e instanceof ApiError) return e.statusCode === 429 || e.statusCode >= 500;
  return e instanceof TransportError || e instanceof NotLeaderError;
}

export type Verb = 'GET' | 'LIST' | 'WATCH' | 'CREATE' | 'UPDATE' | 'PATCH' | 'DELETE';
export type RequestObserver = (verb: Verb, resource: string, statusCode: number) => void;

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** For metrics: what kind of call this is and on what. */
  verb: Verb;
  resource: string;
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | undefined>;
  /** Aborts the request (leader election bounds each renew by its deadline). */
  signal?: AbortSignal;
  /** Lease requests are exempt from the write gate: they are how leadership is kept. */
  ungated?: boolean;
}

const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Decides whether this process may write now, and until when. Leader election installs one so that a
 * leader whose lease may lapse sends no write (and aborts the ones in flight) before another candidate
 * could acquire the lease.
 */
export interface WriteGate {
  /** Milliseconds this process may still act for; 0 or less: it must not write. */
  remainingMs(): number;
}

export class NotLeaderError extends Error {
  constructor(what: string) {
    super(`${what}: not sent, this process no longer holds the leader lease`);
    this.name = 'NotLeaderError';
  }
}

export class KubeClient {
  private agent?: HttpsAgent | HttpAgent;
  private readonly observers: RequestObserver[] = [];
  private gate?: WriteGate;

  constructor(readonly kubeConfig: KubeConfig) {}

  /** From now on every write (apart from `ungated` ones) must pass `gate`; see WriteGate. */
  setWriteGate(gate: WriteGate | undefined): void {
    this.gate = gate;
  }

  onRequest(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  private server(): URL {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    return new URL(cluster.server);
  }

  async request<T>(r: RequestSpec): Promise<T> {
    const base = this.server();
    const url = new URL(base.pathname.replace(/\/$/, '') + r.path, base);
    for (const [k, v] of Object.entries(r.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const opts: RequestOptions = {};
    // Re-read on every call: in-cluster tokens rotate.
    await this.kubeConfig.applyToHTTPSOptions(opts);
    const secure = url.protocol === 'https:';
    // One keep-alive agent with the kubeconfig's TLS material instead of a new one per call, and one
    // TLS context for all its sockets: given only the PEM, Node parses it again for every new socket
    // (a burst of reconciles opens ~100).
    this.agent ??= secure
      ? new HttpsAgent({
        keepAlive: true, secureContext: createSecureContext({ ca: opts.ca, cert: opts.cert, key: opts.key }),
        rejectUnauthorized: opts.rejectUnauthorized, servername: opts.servername,
      })
      : new HttpAgent({ keepAlive: true });
    const payload = r.body === undefined ? undefined : Buffer.from(JSON.stringify(r.body));
    const headers: Record<string, string | number> = { ...(opts.headers as Record<string, string>), Accept: 'application/json' };
    if (payload) {
      headers['Content-Type'] = r.contentType ?? 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const send = secure ? httpsRequest : httpRequest;
    const what = `${r.method} ${r.path}`;
    // A gated write is not sent once the lease may lapse, and is aborted when it does: the time it
    // may take is what is left of the leader's term, not the usual 30 s.
    let timeoutMs = REQUEST_TIMEOUT_MS;
    if (this.gate && r.method !== 'GET' && !r.ungated) {
      const remaining = this.gate.remainingMs();
      if (remaining <= 0) throw new NotLeaderError(what);
      timeoutMs = Math.min(timeoutMs, remaining);
    }
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { method: r.method, headers, agent: this.agent, auth: opts.auth, signal: r.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new TransportError(`${what}: reading response`, { cause: e })));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          for (const o of this.observers) o(r.verb, r.resource, status);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          if (status >= 200 && status < 300) return resolve(parsed as T);
          const message = (parsed as { message?: string } | undefined)?.message ?? text.slice(0, 500);
          reject(new ApiError(`${what}: ${status} ${message}`, status, parsed));
        });
      });
      // A deadline for the whole exchange (node's `timeout` option is only socket idleness).
      const timer = setTimeout(() => req.destroy(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('close', () => clearTimeout(timer));
      req.on('error', (e) => {
        for (const o of this.observers) o(r.verb, r.resource, 0);
        reject(new TransportError(`${what}: ${e.message}`, { cause: e }));
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  /** Server-side apply under the operator's field manager; force takes back fields edited by hand. */
  apply<T extends KubernetesObject>(path: string, resource: string, object: T): Promise<T> {
    return this.request<T>({
      method: 'PATCH', path, verb: 'PATCH', resource, body: object, contentType: 'application/apply-patch+yaml',
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
    });
  }

  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}
