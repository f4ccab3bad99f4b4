import type { ChildProcess } from 'node:child_process';

/** How a child process ended, with what it printed. */
export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Collects a spawned process's output and waits for it to exit; `kill` is called after
 * `timeoutMs` (and the process is waited for still), so a hung command fails the test instead of
 * hanging it.
 */
export async function collectChild(child: ChildProcess, timeoutMs: number, kill: () => void): Promise<ChildResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(kill, timeoutMs);
  try {
    const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done, fail) => {
      child.once('error', fail);
      child.once('close', (code, sig) => done([code, sig]));
    });
    return { status, signal, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** The caller's environment without anything that would configure Gatehouse behind a test's back. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('GATEHOUSE_') || key === 'DATABASE_URL' || key === 'REDIS_URL' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  return env;
}

/** SIGKILLs a child process, by its PID, unless it has already ended. */
export function killChild(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
