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
