import { connect, createServer, type Server, type Socket } from 'node:net';
import { createPostgresSchema, type PostgresSchema } from './postgres.js';

/**
 * A TCP proxy in front of a real service (PostgreSQL) that a test can cut — every connection
 * dropped, the port closed — and restore on the same port: an outage on demand.
 */
export class CuttableProxy {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(
    private readonly target: { host: string; port: number },
    public port = 0,
  ) {}

  get up(): boolean {
    return this.#server !== undefined;
  }

  async start(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target.port, this.target.host);
      for (const socket of [inbound, outbound]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address === 'object' && address) this.port = address.port;
    this.#server = server;
  }

  async cut(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A fresh PostgreSQL schema reached through a cuttable proxy: `url` goes through the proxy. */
export async function proxiedPostgres(): Promise<{ schema: PostgresSchema; proxy: CuttableProxy; url: string }> {
  const schema = await createPostgresSchema();
  const db = new URL(schema.url);
  const proxy = new CuttableProxy({ host: db.hostname, port: Number(db.port || 5432) });
  await proxy.start();
  db.host = `127.0.0.1:${proxy.port}`;
  return { schema, proxy, url: db.toString() };
}
