#!/usr/bin/env node
// The `gatehouse` command: runs the compiled CLI (npm start and npm test build it first).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('gatehouse: not built yet; run `npm run build` (or `npm start`) first\n');
  process.exit(1);
}
await import(main.href);
