/**
 * Opening the user's browser: the platform's opener, spawned directly (no shell, so nothing in
 * the URL is ever interpreted as a command), detached, its output ignored.
 */
import { spawn } from 'node:child_process';
import { GatehouseClientError } from './errors.js';

/**
 * The command that opens `url` on this platform: `open` on macOS, `xdg-open` elsewhere on Unix,
 * and on Windows `rundll32 url.dll,FileProtocolHandler` — not `cmd /c start`, whose command line
 * would treat the `&` between query parameters as a command separator.
 */
export function browserCommand(url: string, platform: NodeJS.Platform = process.platform): { command: string; args: string[] } {
  if (platform === 'darwin') return { command: 'open', args: [url] };
  if (platform === 'win32') return { command: 'rundll32', args: ['url.dll,FileProtocolHandler', url] };
  return { command: 'xdg-open', args: [url] };
}

/**
 * Opens `url` (http or https only) in the default browser. Resolves once the opener started;
 * rejects when it could not be started (e.g. no `xdg-open` on a headless machine), so the caller
 * can fall back to printing the URL. The opener is given the URL as serialised by `new URL()`
 * (spaces, quotes and control characters percent-encoded), never the string as received.
 */
export function openBrowser(url: string): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    return Promise.reject(new GatehouseClientError('invalid_configuration', 'refusing to open something that is not an absolute URL in the browser', { cause }));
  }
  const protocol = parsed.protocol;
  if (protocol !== 'https:' && protocol !== 'http:') {
    return Promise.reject(new GatehouseClientError('invalid_configuration', `refusing to open a ${protocol} URL in the browser`));
  }
  const { command, args } = browserCommand(parsed.href);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { detached: true, stdio: 'ignore', shell: false, windowsHide: true });
    child.once('error', (cause) => reject(new GatehouseClientError('invalid_configuration', `could not start ${command} to open the browser`, { cause })));
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
}
