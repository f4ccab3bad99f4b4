import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A CommonJS package loaded at its first use instead of at startup, so that a server that never
 * needs it never holds it in memory (the PostgreSQL driver, SQLite, the Redis client, argon2:
 * 6–22 MiB of RSS each). `onLoad` runs once, right after loading. A package that cannot be
 * loaded throws at the first use, every time it is asked for.
 */
export function lazyModule<T>(name: string, onLoad?: (loaded: T) => void): () => T {
  let loaded: T | undefined;
  return () => {
    if (loaded === undefined) {
      const module = require(name) as T;
      onLoad?.(module);
      loaded = module;
    }
    return loaded;
  };
}
