// A small JSON client for the Kubernetes API over node:https, authenticated from a KubeConfig.
// Every request of the operator (informer lists included) goes through `request`, so one hook
// counts them all (the benchmark's "API requests per reconcile").
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
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

export type Verb = 'GET' | 'LIST' | 'WATCH' | 'CREATE' | 'UPDATE' | 'PATCH' | 'DELETE';
export type RequestObserver = (verb: Verb, resource: string, statusCode: number) => void;

interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** For metrics: what kind of call this is and on what. */
  verb: Verb;
  resource: string;
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | undefined>;
}

const REQUEST_TIMEOUT_MS = 30_000;

export class KubeClient {
  private agent?: HttpsAgent | HttpAgent;
  private readonly observers: RequestObserver[] = [];

  constructor(readonly kubeConfig: KubeConfig) {}

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
    // One keep-alive agent with the kubeconfig's TLS material instead of a new one per call.
    this.agent ??= secure
      ? new HttpsAgent({ keepAlive: true, ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.rejectUnauthorized, servername: opts.servername })
      : new HttpAgent({ keepAlive: true });
    const payload = r.body === undefined ? undefined : Buffer.from(JSON.stringify(r.body));
    const headers: Record<string, string | number> = { ...(opts.headers as Record<string, string>), Accept: 'application/json' };
    if (payload) {
      headers['Content-Type'] = r.contentType ?? 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const send = secure ? httpsRequest : httpRequest;
    const what = `${r.method} ${r.path}`;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { method: r.method, headers, agent: this.agent, auth: opts.auth, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new Error(`${what}: reading response`, { cause: e })));
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
      req.on('timeout', () => req.destroy(new Error(`${what}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (e) => {
        for (const o of this.observers) o(r.verb, r.resource, 0);
        reject(new Error(`${what}: ${e.message}`, { cause: e }));
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
