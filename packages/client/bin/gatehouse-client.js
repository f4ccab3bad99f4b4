#!/usr/bin/env node
// The `gatehouse-client` command: runs the compiled CLI (npm test builds it first).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('gatehouse-client: not built yet; run `npm run build -w @gatehouse/client` first\n');
  process.exit(1);
}
await import(main.href);
