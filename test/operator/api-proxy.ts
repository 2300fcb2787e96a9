// A fault-injecting HTTP proxy in front of the local API server, for one operator process: it listens
// on loopback (plain HTTP), forwards each request over TLS with the admin's client certificate, and
// keeps a log of every write it forwarded (when it was sent on and when the API server answered).
// `leases` decides what happens to Lease requests: forwarded, stalled (held unanswered, as a
// hung connection would be) or dropped (the connection is cut).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeKubeConfig } from '../harness/cluster.js';

export type LeaseMode = 'forward' | 'stall' | 'drop';

export interface WriteRecord {
  method: string;
  path: string;
  /** When the proxy sent the request on (ms since the epoch). */
  sentAt: number;
  /** When the API server's answer came back; undefined if it never did. */
  answeredAt?: number;
  status?: number;
}

export interface ApiProxy {
  port: number;
  /** A kubeconfig that reaches the API server through this proxy. */
  kubeconfig: string;
  leases: LeaseMode;
  /** Non-lease writes (POST/PUT/PATCH/DELETE) forwarded. */
  writes: WriteRecord[];
  close(): Promise<void>;
}

const isLease = (url: string) => url.includes('/apis/coordination.k8s.io/');
const isWrite = (method: string) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method);

export async function startApiProxy(name: string): Promise<ApiProxy> {
  const kc = makeKubeConfig();
  const upstream = new URL(kc.getCurrentCluster()!.server);
  const tls: RequestOptions = {};
  await kc.applyToHTTPSOptions(tls);
  const agent = new Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key });
  const held = new Set<ServerResponse>();

  const proxy: ApiProxy = {
    port: 0, kubeconfig: '', leases: 'forward', writes: [],
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (isLease(url) && proxy.leases === 'drop') return req.socket.destroy();
    if (isLease(url) && proxy.leases === 'stall') {
      held.add(res);
      res.on('close', () => held.delete(res));
      req.resume();
      return;
    }
    const record: WriteRecord | undefined = isWrite(req.method ?? '') && !isLease(url) ? { method: req.method!, path: url, sentAt: Date.now() } : undefined;
    if (record) proxy.writes.push(record);
    const headers = { ...req.headers, host: upstream.host };
    const up = httpsRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: url, headers, agent }, (answer) => {
      if (record) {
        record.answeredAt = Date.now();
        record.status = answer.statusCode;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      res.flushHeaders(); // a watch may send nothing for a long time
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as AddressInfo).port;
  const dir = mkdtempSync(path.join(tmpdir(), `api-proxy-${name}-`));
  proxy.kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(proxy.kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: proxy',
    // Plain HTTP on loopback; client-node refuses http:// unless TLS verification is declared off.
    `clusters: [{name: proxy, cluster: {server: "http://127.0.0.1:${proxy.port}", insecure-skip-tls-verify: true}}]`,
    'users: [{name: proxy, user: {}}]',
    'contexts: [{name: proxy, context: {cluster: proxy, user: proxy}}]', '',
  ].join('\n'));
  return proxy;
}
