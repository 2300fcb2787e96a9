// One server span per generation request, named and attributed as the OpenTelemetry GenAI semantic
// conventions say, with a child span per phase the engine went through (queue wait, prefill, decode).
//
// Conventions followed: semconv v1.45.0 (GenAI is at Development status, so the version is pinned with
// the exact @opentelemetry/semantic-conventions package whose incubating entry point names them).
// Without an SDK (tracing off) every span is a no-op and nothing here allocates beyond that.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SpanKind, SpanStatusCode, context, propagation, trace, type Attributes, type Span } from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import {
  ATTR_GEN_AI_OPERATION_NAME, ATTR_GEN_AI_REQUEST_MAX_TOKENS, ATTR_GEN_AI_REQUEST_MODEL, ATTR_GEN_AI_REQUEST_SEED,
  ATTR_GEN_AI_REQUEST_STOP_SEQUENCES, ATTR_GEN_AI_REQUEST_STREAM, ATTR_GEN_AI_REQUEST_TEMPERATURE, ATTR_GEN_AI_REQUEST_TOP_K,
  ATTR_GEN_AI_REQUEST_TOP_P, ATTR_GEN_AI_RESPONSE_FINISH_REASONS, ATTR_GEN_AI_RESPONSE_ID, ATTR_GEN_AI_RESPONSE_MODEL,
  ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ATTR_GEN_AI_USAGE_INPUT_TOKENS, ATTR_GEN_AI_USAGE_OUTPUT_TOKENS,
  GEN_AI_OPERATION_NAME_VALUE_CHAT, GEN_AI_OPERATION_NAME_VALUE_TEXT_COMPLETION,
} from '@opentelemetry/semantic-conventions/incubating';
import type { FinishedRequestStats, RequestTimeline } from '../engine/engine.js';
import type { SamplingParams } from '../engine/sequence.js';

export const GEN_AI_SEMCONV_VERSION = '1.45.0';

/** The GenAI operation of each generation route. */
export const OPERATION_BY_ROUTE: Record<string, string> = {
  '/v1/completions': GEN_AI_OPERATION_NAME_VALUE_TEXT_COMPLETION,
  '/v1/chat/completions': GEN_AI_OPERATION_NAME_VALUE_CHAT,
};

/** Child spans, one per phase; a phase the request never reached has none. */
const PHASES: Array<{ name: string; from: keyof RequestTimeline; to: keyof RequestTimeline }> = [
  { name: 'queue', from: 'arrival', to: 'scheduled' },
  { name: 'prefill', from: 'scheduled', to: 'firstToken' },
  { name: 'decode', from: 'firstToken', to: 'lastToken' },
];

/** performance.now()-clock seconds → epoch milliseconds, the time the exporter sends. */
const epochMs = (seconds: number): number => performance.timeOrigin + seconds * 1000;

export class RequestTracing {
  private readonly tracer = trace.getTracer('jamba-runtime');
  /** Engine request id → the server span of the exchange that admitted it (recording spans only). */
  private readonly spans = new Map<string, Span>();
  private readonly requestIdOf = new WeakMap<Span, string>();

  constructor(private readonly servedModelName: string) {}

  /**
   * Runs one generation exchange inside its server span. The span continues the caller's trace
   * (W3C traceparent) and ends when the response is closed, with its status code, whoever wrote it.
   */
  async exchange(route: string, req: IncomingMessage, res: ServerResponse, run: () => Promise<void>): Promise<void> {
    const operation = OPERATION_BY_ROUTE[route] ?? route;
    const parent = propagation.extract(context.active(), req.headers);
    const local = req.socket.localAddress;
    const span = this.tracer.startSpan(`${operation} ${this.servedModelName}`, {
      kind: SpanKind.SERVER,
      attributes: {
        [ATTR_GEN_AI_OPERATION_NAME]: operation,
        [ATTR_GEN_AI_REQUEST_MODEL]: this.servedModelName,
        [ATTR_HTTP_REQUEST_METHOD]: req.method ?? 'POST',
        [ATTR_URL_PATH]: route,
        ...(local ? { [ATTR_SERVER_ADDRESS]: local, [ATTR_SERVER_PORT]: req.socket.localPort } : {}),
      },
    }, parent);
    if (span.isRecording()) res.once('close', () => this.end(span, res));
    await context.with(trace.setSpan(parent, span), run);
  }

  /** The engine took a request on behalf of the exchange in the active context. */
  admitted(requestId: string, params: SamplingParams): void {
    const span = trace.getActiveSpan();
    if (!span?.isRecording()) return;
    this.spans.set(requestId, span);
    this.requestIdOf.set(span, requestId);
    const attributes: Attributes = {
      [ATTR_GEN_AI_RESPONSE_ID]: requestId,
      [ATTR_GEN_AI_RESPONSE_MODEL]: this.servedModelName,
      [ATTR_GEN_AI_REQUEST_MAX_TOKENS]: params.maxTokens,
      [ATTR_GEN_AI_REQUEST_TEMPERATURE]: params.temperature,
      [ATTR_GEN_AI_REQUEST_TOP_P]: params.topP,
    };
    if (params.topK > 0) attributes[ATTR_GEN_AI_REQUEST_TOP_K] = params.topK;
    if (params.seed !== undefined) attributes[ATTR_GEN_AI_REQUEST_SEED] = params.seed;
    if (params.stop.length > 0) attributes[ATTR_GEN_AI_REQUEST_STOP_SEQUENCES] = params.stop;
    span.setAttributes(attributes);
  }

  /** The engine finished a request: usage, finish reason and one child span per phase. */
  finished(stats: FinishedRequestStats): void {
    const span = this.spans.get(stats.requestId);
    if (!span) return;
    this.spans.delete(stats.requestId);
    const t = stats.timeline;
    span.setAttributes({
      [ATTR_GEN_AI_USAGE_INPUT_TOKENS]: stats.numPromptTokens,
      [ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: stats.numOutputTokens,
      [ATTR_GEN_AI_RESPONSE_FINISH_REASONS]: [stats.finishReason],
      ...(stats.timeToFirstTokenSeconds !== undefined ? { [ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]: stats.timeToFirstTokenSeconds } : {}),
    });
    const parent = trace.setSpan(context.active(), span);
    for (const phase of PHASES) {
      const from = t[phase.from];
      const to = t[phase.to];
      if (from === undefined || to === undefined) continue;
      const attributes: Attributes = phase.name === 'prefill' ? { [ATTR_GEN_AI_USAGE_INPUT_TOKENS]: stats.numPromptTokens }
        : phase.name === 'decode' ? { [ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: stats.numOutputTokens } : {};
      this.tracer.startSpan(phase.name, { kind: SpanKind.INTERNAL, startTime: epochMs(from), attributes }, parent).end(epochMs(to));
    }
  }

  private end(span: Span, res: ServerResponse): void {
    const requestId = this.requestIdOf.get(span);
    if (requestId !== undefined) this.spans.delete(requestId);
    const status = res.statusCode;
    if (res.headersSent) {
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      span.setAttribute(ATTR_GEN_AI_REQUEST_STREAM, String(res.getHeader('content-type')).startsWith('text/event-stream'));
    }
    if (!res.writableFinished) {
      // The connection closed before the response ended (the client went away mid-stream).
      span.setAttribute(ATTR_ERROR_TYPE, 'response_incomplete');
    } else if (status >= 400) {
      span.setAttribute(ATTR_ERROR_TYPE, String(status));
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
    }
    span.end();
  }
}
