#!/usr/bin/env node
// jamba-operator: reconciles JambaDeployments. See docs/OPERATOR.md.
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_WORKERS, Operator } from '../controller/operator.js';
import { createLogger, type Level } from '../observability/logger.js';
import { startTracing, stopTracing } from '../observability/tracing.js';

const USAGE = `usage: jamba-operator [options]
  --kubeconfig PATH            kubeconfig to use (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)
  --metrics-addr HOST:PORT     /metrics, /healthz, /readyz (default 127.0.0.1:8080; in a pod use 0.0.0.0:8080)
  --leader-elect=true|false    elect a leader on a Lease before reconciling (default true)
  --leader-elect-namespace NS  namespace of the Lease (default $POD_NAMESPACE, else --namespace, else default)
  --leader-elect-lease-duration SECONDS   how long a standby waits before taking an unrenewed lease (default 10)
  --leader-elect-renew-deadline SECONDS   the leader stops acting (and exits) if it cannot renew within this (default 7)
  --leader-elect-retry-period SECONDS     between acquire/renew attempts (default 2)
  --namespace NS[,NS...]       watch only these namespaces (default: all namespaces)
  --default-runtime-image IMG  run IMG where a JambaDeployment keeps the CRD's default runtime image
  --workers N                  concurrent reconciles (default ${DEFAULT_WORKERS})
  --autoscaler-interval SECONDS   between autoscaling decisions (default 10)
  --prometheus-url URL         read autoscaling metrics from this Prometheus HTTP API instead of scraping each pod
  --log-level LEVEL            debug|info|warn|error (default info)
  -h, --help`;

function fail(message: string): never {
  process.stderr.write(`jamba-operator: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      options: {
        kubeconfig: { type: 'string' },
        'metrics-addr': { type: 'string', default: '127.0.0.1:8080' },
        'leader-elect': { type: 'string', default: 'true' },
        'leader-elect-namespace': { type: 'string' },
        'leader-elect-lease-duration': { type: 'string', default: '10' },
        'leader-elect-renew-deadline': { type: 'string', default: '7' },
        'leader-elect-retry-period': { type: 'string', default: '2' },
        namespace: { type: 'string' },
        'default-runtime-image': { type: 'string' },
        workers: { type: 'string', default: String(DEFAULT_WORKERS) },
        'autoscaler-interval': { type: 'string', default: '10' },
        'prometheus-url': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
}

async function main(): Promise<void> {
  const args = parse();
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const level = args['log-level'] as Level;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) fail(`--log-level must be debug, info, warn or error, not ${JSON.stringify(level)}`);
  const leaderElect = args['leader-elect'];
  if (leaderElect !== 'true' && leaderElect !== 'false') fail(`--leader-elect must be true or false, not ${JSON.stringify(leaderElect)}`);
  const workers = Number(args.workers);
  if (!Number.isInteger(workers) || workers < 1) fail(`--workers must be a positive integer, not ${JSON.stringify(args.workers)}`);
  const seconds = (flag: 'leader-elect-lease-duration' | 'leader-elect-renew-deadline' | 'leader-elect-retry-period'): number => {
    const v = Number(args[flag]);
    if (!Number.isFinite(v) || v <= 0) fail(`--${flag} must be a positive number of seconds, not ${JSON.stringify(args[flag])}`);
    return v;
  };
  const lease = { leaseDurationSeconds: seconds('leader-elect-lease-duration'), renewDeadlineSeconds: seconds('leader-elect-renew-deadline'), retryPeriodSeconds: seconds('leader-elect-retry-period') };
  if (!(lease.retryPeriodSeconds < lease.renewDeadlineSeconds && lease.renewDeadlineSeconds < lease.leaseDurationSeconds)) {
    fail('leader election needs retry period < renew deadline < lease duration');
  }
  const log = createLogger({ level });

  const kubeConfig = new KubeConfig();
  try {
    if (args.kubeconfig) kubeConfig.loadFromFile(args.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (e) {
    fail(`loading kubeconfig ${args.kubeconfig ?? '(default)'}: ${(e as Error).message}`);
  }
  if (startTracing()) log.info('tracing on (OTEL_* environment)');

  const namespaces = args.namespace?.split(',').map((ns) => ns.trim());
  const badNamespace = namespaces?.find((ns) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns) || ns.length > 63);
  if (badNamespace !== undefined) fail(`--namespace: ${JSON.stringify(badNamespace)} is not a namespace name`);
  const defaultRuntimeImage = args['default-runtime-image'];
  if (defaultRuntimeImage === '') fail('--default-runtime-image must not be empty');
  const interval = Number(args['autoscaler-interval']);
  if (!Number.isFinite(interval) || interval < 1) fail(`--autoscaler-interval must be at least 1 second, not ${JSON.stringify(args['autoscaler-interval'])}`);
  const prometheusUrl = args['prometheus-url'];
  if (prometheusUrl !== undefined && !/^https?:\/\/[^/]/.test(prometheusUrl)) fail(`--prometheus-url must be an http(s) URL, not ${JSON.stringify(prometheusUrl)}`);
  const leaseNamespace = args['leader-elect-namespace'] ?? process.env.POD_NAMESPACE ?? namespaces?.[0] ?? 'default';
  const operator = new Operator({
    kubeConfig,
    namespace: namespaces,
    defaults: { runtimeImage: defaultRuntimeImage },
    leaderElection: leaderElect === 'true' ? { namespace: leaseNamespace, ...lease } : false,
    metricsAddress: args['metrics-addr'],
    workers,
    autoscaling: { intervalMs: interval * 1000, ...(prometheusUrl ? { prometheusUrl } : {}) },
    logger: log,
    processMetrics: true,
    // client-go's convention: a process that lost the lease exits and is restarted as a fresh candidate.
    onLostLeadership: () => {
      log.error('exiting: leadership lost');
      process.exit(1);
    },
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info('shutting down', { signal });
    operator.stop()
      .then(stopTracing)
      .then(() => process.exit(0))
      .catch((e: unknown) => {
        log.error('shutdown failed', { error: e });
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  await operator.start();
  log.info('jamba-operator started', { identity: operator.identity, leaderElection: leaderElect === 'true', namespaces: namespaces ?? '(all)' });
}

main().catch((e: unknown) => {
  process.stderr.write(`jamba-operator: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
