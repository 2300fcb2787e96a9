// The HTTP server: OpenAI-compatible routes, health/readiness, metrics, and the serving lifecycle
// loading → ready → draining. It listens from the start, so probes and /metrics answer while the
// weights load; generation routes answer 503 until the model is attached and again while draining.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LoadProgress } from '../engine/model-runner.js';
import type { RuntimeMetrics } from '../metrics/metrics.js';
import type { RequestTracing } from '../tracing/request-tracing.js';
import { handleChat } from './chat.js';
import { handleCompletion } from './completions.js';
import type { ServingContext } from './context.js';
import { ApiError } from './errors.js';
import { discardBody, parseJsonObject, readBody, sendError, sendJson } from './http-io.js';
import type { Logger } from './log.js';
import { modelList } from './models.js';

export type Phase = 'loading' | 'ready' | 'draining' | 'failed';

export interface RuntimeServerOptions {
  servedModelName: string;
  modelDir: string;
  /** Largest request body accepted (413 beyond). */
  maxBodyBytes: number;
  metrics: RuntimeMetrics;
  tracing: RequestTracing;
  log: Logger;
}

type GenerationHandler = (ctx: ServingContext, body: Record<string, unknown>, req: IncomingMessage, res: ServerResponse) => Promise<void>;

const GENERATION_ROUTES: Record<string, GenerationHandler> = {
  '/v1/completions': handleCompletion,
  '/v1/chat/completions': handleChat,
};
const GET_ROUTES = new Set(['/health', '/ready', '/metrics', '/v1/models']);

export class RuntimeServer {
  private phase: Phase = 'loading';
  private serving?: ServingContext;
  private progress?: LoadProgress;
  private failure?: string;
  private readonly http: Server;
  private readonly created = Math.floor(Date.now() / 1000);
  /** Generation exchanges not yet answered in full (drain waits for them). */
  private activeExchanges = 0;
  private exchangesDone?: () => void;

  constructor(private readonly opts: RuntimeServerOptions) {
    this.http = createServer((req, res) => void this.handle(req, res));
  }

  get state(): Phase {
    return this.phase;
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    return this.http.address() as AddressInfo;
  }

  setLoadProgress(progress: LoadProgress): void {
    this.progress = progress;
  }

  /** The model is loaded: start serving generation routes. */
  attach(serving: ServingContext): void {
    this.serving = serving;
    if (this.phase === 'loading') this.phase = 'ready';
  }

  markFailed(message: string): void {
    this.phase = 'failed';
    this.failure = message;
  }

  /**
   * Stops taking new generation requests (/ready turns 503) and waits up to `timeoutMs` for those in
   * flight to finish; what is left then is cancelled. Resolves with whether everything finished.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.phase = 'draining';
    // Kept-alive connections would keep bringing requests here after the pod left its Service's
    // endpoints: close the idle ones now, and each busy one once its answer is complete (handle()), so
    // clients reconnect and reach a pod that is not going away.
    this.http.closeIdleConnections();
    const finished = this.activeExchanges === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.exchangesDone = resolve));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const drained = await Promise.race([finished.then(() => true), timedOut]);
    clearTimeout(timer);
    if (!drained) {
      this.opts.log('warn', 'drain timeout: cancelling requests still running', { requests: this.activeExchanges });
      this.serving?.engine.abortAll();
      await finished;
    }
    return drained;
  }

  /** Closes the listener and every connection; the engine is closed by its owner. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (this.phase === 'draining') res.shouldKeepAlive = false;
    res.once('finish', () => {
      if (this.phase === 'draining') setImmediate(() => this.http.closeIdleConnections());
    });
    this.opts.metrics.countResponse(req.method, GENERATION_ROUTES[path] || GET_ROUTES.has(path) ? path : 'other', res);
    try {
      const generation = GENERATION_ROUTES[path];
      if (generation) {
        if (req.method !== 'POST') throw methodNotAllowed(req.method, path, 'POST');
        await this.opts.tracing.exchange(path, req, res, () => this.generate(generation, req, res));
      } else if (GET_ROUTES.has(path)) {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(req.method, path, 'GET');
        if (!(await discardBody(req, this.opts.maxBodyBytes))) res.shouldKeepAlive = false;
        await this.handleGet(path, res);
      } else {
        throw new ApiError(404, `no route for ${req.method} ${path}`, 'invalid_request_error', null, 'not_found');
      }
    } catch (error) {
      const apiError =
        error instanceof ApiError ? error : new ApiError(500, `internal error: ${(error as Error).message}`, 'server_error');
      if (apiError.status >= 500 && apiError.status !== 503) this.opts.log('error', 'request failed', { path, error: (error as Error).stack });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const headers: Record<string, string> = {};
      if (apiError instanceof MethodNotAllowedError) headers['allow'] = apiError.allow;
      // The rest of the body is read first, or the answer could be lost to a reset; after a refused or
      // timed-out body it is not read: close the connection.
      const drained = apiError.status !== 413 && apiError.status !== 408 && (await discardBody(req, this.opts.maxBodyBytes));
      if (!drained) headers['connection'] = 'close';
      sendError(res, apiError, headers);
    }
  }

  private async generate(handler: GenerationHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const serving = this.serving;
    if (this.phase !== 'ready' || !serving) throw this.unavailable();
    this.activeExchanges++;
    try {
      const body = parseJsonObject(await readBody(req, this.opts.maxBodyBytes));
      await handler(serving, body, req, res);
    } finally {
      if (--this.activeExchanges === 0) this.exchangesDone?.();
    }
  }

  private unavailable(): ApiError {
    switch (this.phase) {
      case 'loading':
        return new ApiError(503, 'the model is still loading', 'service_unavailable_error', null, 'model_loading', 5);
      case 'draining':
        return new ApiError(503, 'the server is shutting down', 'service_unavailable_error', null, 'draining', 1);
      default:
        return new ApiError(503, `the model failed to load: ${this.failure ?? 'unknown error'}`, 'service_unavailable_error', null, 'model_load_failed');
    }
  }

  private async handleGet(path: string, res: ServerResponse): Promise<void> {
    switch (path) {
      case '/health': {
        // Liveness: the process answers, and the engine (once there is one) still makes progress.
        const health = this.serving?.engine.health() ?? { ok: true };
        sendJson(res, health.ok ? 200 : 503, health.ok ? { status: 'ok' } : { status: 'unhealthy', reason: health.reason });
        return;
      }
      case '/ready': {
        const p = this.progress;
        const load = p
          ? { ratio: p.ratio, bytes_loaded: p.bytesLoaded, bytes_total: p.bytesTotal, eta_seconds: p.etaSeconds ?? null }
          : { ratio: this.serving ? 1 : 0 };
        sendJson(res, this.phase === 'ready' ? 200 : 503, { status: this.phase, model: this.opts.servedModelName, load, ...(this.failure ? { error: this.failure } : {}) });
        return;
      }
      case '/metrics': {
        const { contentType, body } = await this.opts.metrics.render();
        res.writeHead(200, { 'content-type': contentType });
        res.end(body);
        return;
      }
      case '/v1/models':
        sendJson(res, 200, modelList(this.opts.servedModelName, this.opts.modelDir, this.serving?.maxModelLen, this.created));
        return;
    }
  }
}

class MethodNotAllowedError extends ApiError {
  constructor(
    method: string | undefined,
    path: string,
    readonly allow: string,
  ) {
    super(405, `${method} is not allowed on ${path}; use ${allow}`, 'invalid_request_error', null, 'method_not_allowed');
  }
}

const methodNotAllowed = (method: string | undefined, path: string, allow: string): ApiError => new MethodNotAllowedError(method, path, allow);
