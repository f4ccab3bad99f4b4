// Test-only preload (`node --require`): on SIGUSR2 the process writes the npm packages it has
// loaded to stderr, as one line `loaded-packages: [...]`. The database drivers, the Redis client
// and argon2 are CommonJS, so once loaded they are in require.cache, however they were imported.
/* global require, process */
process.on('SIGUSR2', () => {
  const packages = new Set();
  for (const file of Object.keys(require.cache)) {
    // The last node_modules segment: a package nested in another's is reported as itself.
    const match = /.*node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(file);
    if (match) packages.add(match[1].replace('\\', '/'));
  }
  process.stderr.write(`loaded-packages: ${JSON.stringify([...packages].sort())}\n`);
});
