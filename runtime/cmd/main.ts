#!/usr/bin/env node
// jamba-runtime: the serving process of one replica.
//   jamba-runtime serve --model DIR [--host 127.0.0.1] [--port 8000] [--quantization none|expertsint8] ...
// SIGTERM (and SIGINT) drain: /ready turns 503, new requests get 503, requests in flight finish
// within --drain-timeout seconds (the rest are cancelled), then the process exits 0.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServeConfig } from './args.js';
import { UsageError } from './usage-error.js';

// Each command's modules are imported when it runs: `download` (a short-lived Job) then starts without
// compiling the serving runtime, the model code and tracing, and its heap (which every full garbage
// collection marks) holds only what it uses.

const TOP_USAGE = `Usage: jamba-runtime <command> [options]

Commands:
  serve    Serve a Jamba checkpoint over the OpenAI API (see: jamba-runtime serve --help)
  bench    Benchmark the model or single ops (see: jamba-runtime bench --help)
  download Download a checkpoint from the Hugging Face Hub (see: jamba-runtime download --help)
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(TOP_USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'bench') {
    const { bench, benchUsage } = await import('./bench.js');
    try {
      return await bench(rest);
    } catch (error) {
      if (!(error instanceof UsageError) && (error as { code?: string }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw error;
      process.stderr.write(`jamba-runtime bench: ${(error as Error).message}\n\n${benchUsage()}`);
      return 2;
    }
  }
  if (command === 'download') {
    const { downloadUsage, parseDownloadArgs, runDownload } = await import('./download.js');
    return subcommand('download', () => parseDownloadArgs(rest), downloadUsage, runDownload);
  }
  if (command !== 'serve') {
    process.stderr.write(`jamba-runtime: unknown command '${command}'\n\n${TOP_USAGE}`);
    return 2;
  }
  const { parseServeArgs, serveUsage } = await import('./args.js');
  return subcommand('serve', () => parseServeArgs(rest), serveUsage, serve);
}

/** Parses a subcommand's flags (usage errors exit 2 with the usage, --help prints it) and runs it. */
async function subcommand<C>(name: string, parse: () => C | 'help', usage: () => string, run: (config: C) => Promise<number>): Promise<number> {
  let config: C | 'help';
  try {
    config = parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    // The error comes last: a pod's termination message (FallbackToLogsOnError) is the log's tail.
    process.stderr.write(`${usage()}\njamba-runtime ${name}: ${error.message}\n`);
    return 2;
  }
  if (config === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  return run(config);
}

async function serve(config: ServeConfig): Promise<number> {
  const [{ jsonLogger: log }, { startRuntime }, { startTracing, stopTracing }] = await Promise.all([
    import('../server/log.js'), import('../server/runtime.js'), import('../../common/tracing.js'),
  ]);
  if (startTracing('jamba-runtime')) log('info', 'tracing on (OTEL_* environment)', {});
  const runtime = await startRuntime({ ...config.runtime, log });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = async (signal: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      log('info', 'draining', { signal, timeout_seconds: config.drainTimeoutSeconds });
      const drained = await runtime.drain(config.drainTimeoutSeconds * 1000);
      await runtime.close();
      await stopTracing();
      log('info', 'stopped', { drained });
      resolve(0);
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
    runtime.ready.catch(async () => {
      // Without a model the process cannot serve: exit non-zero so the pod restarts with the reason logged.
      if (stopping) return;
      stopping = true;
      await runtime.close();
      resolve(1);
    });
  });
}

const invokedDirectly = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      process.stderr.write(`jamba-runtime: ${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
}
