import { Registry } from 'prom-client';
import { parseAddress, startProbeServer } from './http-server.js';
import { createLogger } from './logger.js';
import { tracingRequested } from './tracing.js';

describe('tracing is off unless OTEL_* asks for it', () => {
  test.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }, true],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }, false],
  ])('%j → %s', (env, expected) => {
    expect(tracingRequested(env as NodeJS.ProcessEnv)).toBe(expected);
  });
});

describe('parseAddress', () => {
  test.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
    ['[::1]:9090', { host: '::1', port: 9090 }],
    [':8080', { host: '127.0.0.1', port: 8080 }],
  ])('%s', (addr, expected) => {
    expect(parseAddress(addr)).toEqual(expected);
  });
  test.each(['8080x', 'host:', 'host:70000'])('rejects %s', (addr) => {
    expect(() => parseAddress(addr)).toThrow(/want HOST:PORT/);
  });
});

test('probe server answers /metrics, /healthz, /readyz', async () => {
  const registry = new Registry();
  let ready = false;
  const { server, port } = await startProbeServer({ address: '127.0.0.1:0', registry, ready: () => ready });
  try {
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('logs are one JSON object per line, errors with their causes', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', write: (l) => lines.push(l) }).child({ component: 'x' });
  log.debug('hidden');
  log.error('failed', { error: new Error('outer', { cause: new Error('inner') }) });
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'error', msg: 'failed', component: 'x', error: { message: 'outer', cause: { message: 'inner' } } });
});
