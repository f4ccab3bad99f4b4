import { sql } from 'kysely';
import { openDatabase, type DatabaseHandle, type DatabaseOptions, type DialectName } from './database.js';
import { AccessTokenRepository } from './repositories/access-token-repository.js';
import { AssertionRepository } from './repositories/assertion-repository.js';
import { ClientRepository } from './repositories/client-repository.js';
import { InitialAccessTokenRepository } from './repositories/initial-access-token-repository.js';
import { KeyRepository } from './repositories/key-repository.js';
import { ResourceRepository } from './repositories/resource-repository.js';

/** Every repository over one database handle. */
export class Storage {
  readonly clients: ClientRepository;
  readonly resources: ResourceRepository;
  readonly keys: KeyRepository;
  readonly initialAccessTokens: InitialAccessTokenRepository;
  readonly accessTokens: AccessTokenRepository;
  readonly assertions: AssertionRepository;

  constructor(readonly handle: DatabaseHandle) {
    const db = handle.db;
    this.clients = new ClientRepository(db);
    this.resources = new ResourceRepository(db);
    this.keys = new KeyRepository(db);
    this.initialAccessTokens = new InitialAccessTokenRepository(db);
    this.accessTokens = new AccessTokenRepository(db);
    this.assertions = new AssertionRepository(db);
  }

  get dialect(): DialectName {
    return this.handle.dialect;
  }

  /** Readiness: one round trip to the database. */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.handle.db);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export function openStorage(options: DatabaseOptions): Storage {
  return new Storage(openDatabase(options));
}
