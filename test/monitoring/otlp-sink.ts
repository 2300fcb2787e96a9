// A real OTLP/HTTP receiver on loopback for tests: tools/go/otlp (`otlp-sink`, built into .tools/bin by
// `make tools`) decodes each export with the OpenTelemetry project's generated protobuf types and
// prints it as JSON; this reads those lines back as flat spans.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { toolPath } from '../harness/exec.js';

export type AttributeValue = string | number | boolean | AttributeValue[];

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttributeValue>;
  status: { code?: string; message?: string };
  events: string[];
  resource: Record<string, AttributeValue>;
  scope: string;
}

interface AnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
}
type KeyValue = { key: string; value: AnyValue };

function value(v: AnyValue): AttributeValue {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(value);
  // protojson leaves out zero values: an empty AnyValue is 0, false or "" on the sender's side.
  return 0;
}

const attributes = (kvs: KeyValue[] | undefined): Record<string, AttributeValue> => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, value(kv.value)]));
const hex = (base64: string | undefined): string | undefined => (base64 ? Buffer.from(base64, 'base64').toString('hex') : undefined);

export class OtlpSink {
  readonly spans: ReceivedSpan[] = [];
  private constructor(private readonly child: ChildProcess, readonly url: string) {}

  static async start(): Promise<OtlpSink> {
    const bin = toolPath('otlp-sink');
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make tools\` (\`make test\` does)`);
    const child = spawn(bin, ['--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! });
    let sink: OtlpSink | undefined;
    const url = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`otlp-sink exited with ${code} before listening`)));
      lines.on('line', (line) => {
        if (!sink) {
          const m = /^listening on (\S+)$/.exec(line);
          if (m) resolve(m[1]!);
          return;
        }
        sink.receive(line);
      });
    });
    sink = new OtlpSink(child, url);
    return sink;
  }

  private receive(line: string): void {
    const data = JSON.parse(line) as { resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans?: Array<{ scope?: { name?: string }; spans?: any[] }> }> };
    for (const rs of data.resourceSpans ?? []) {
      const resource = attributes(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            traceId: hex(s.traceId)!, spanId: hex(s.spanId)!, parentSpanId: hex(s.parentSpanId), name: s.name, kind: s.kind ?? 'SPAN_KIND_UNSPECIFIED',
            startNs: BigInt(s.startTimeUnixNano), endNs: BigInt(s.endTimeUnixNano), attributes: attributes(s.attributes),
            status: s.status ?? {}, events: (s.events ?? []).map((e: { name: string }) => e.name), resource, scope: ss.scope?.name ?? '',
          });
        }
      }
    }
  }

  /** Resolves once `predicate` holds over the spans received, or rejects after `timeoutMs`. */
  async waitFor(what: string, predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.spans)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received: ${this.spans.map((s) => s.name).join(', ') || 'no spans'}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}
