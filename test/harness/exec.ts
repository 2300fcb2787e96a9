// Runs the repository's tools and scripts for the test harness: paths, and a child process runner
// whose errors carry the command and its stderr.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const clusterDir = path.join(repoRoot, '.cluster');

export function toolPath(name: string): string {
  return path.join(repoRoot, '.tools', 'bin', name);
}

export function clusterScript(name: string): string {
  return path.join(repoRoot, 'tools', 'cluster', name);
}

export interface RunOptions {
  /** Written to the child's stdin (then closed). */
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Pass the child's stderr through to ours (progress of long scripts) instead of capturing it. */
  inheritStderr?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs `file args`; resolves with its output when it exits 0, rejects with the stderr otherwise. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const command = [path.basename(file), ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', options.inheritStderr ? 'inherit' : 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (cause) => reject(new Error(`running ${command}: ${cause.message}`, { cause })));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve({ stdout, stderr });
      const how = signal ? `killed by ${signal}` : `exit ${code}`;
      reject(new Error(`${command} failed (${how}): ${stderr.trim() || stdout.trim()}`));
    });
    // A child that exits without reading its stdin (kubectl delete) must not fail the run with EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

/** Runs one of tools/cluster/*.sh with bash. */
export function runClusterScript(name: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
  return run('bash', [clusterScript(name), ...args], options);
}
