import { sql } from 'kysely';
import { openDatabase, type DatabaseHandle, type DatabaseOptions, type DialectName } from './database.js';
import { AccessTokenRepository } from './repositories/access-token-repository.js';
import { AssertionRepository } from './repositories/assertion-repository.js';
import { ClientRepository } from './repositories/client-repository.js';
import { InitialAccessTokenRepository } from './repositories/initial-access-token-repository.js';
import { KeyRepository } from './repositories/key-repository.js';
import { ResourceRepository } from './repositories/resource-repository.js';
import { LoginThrottleRepository } from './repositories/login-throttle-repository.js';
import { BrowserSessionRepository } from './repositories/session-repository.js';
import { UserRepository } from './repositories/user-repository.js';
import { AuthorizationCodeRepository } from './repositories/authorization-code-repository.js';
import { GrantRepository } from './repositories/grant-repository.js';
import { InteractionRepository } from './repositories/interaction-repository.js';
import { RefreshTokenRepository } from './repositories/refresh-token-repository.js';
import { JanitorRepository } from './repositories/janitor-repository.js';
import { DeviceCodeRepository } from './repositories/device-code-repository.js';
import { RateLimitRepository } from './repositories/rate-limit-repository.js';

/** Every repository over one database handle. */
export class Storage {
  readonly clients: ClientRepository;
  readonly resources: ResourceRepository;
  readonly keys: KeyRepository;
  readonly initialAccessTokens: InitialAccessTokenRepository;
  readonly accessTokens: AccessTokenRepository;
  readonly assertions: AssertionRepository;
  readonly users: UserRepository;
  readonly sessions: BrowserSessionRepository;
  readonly loginThrottle: LoginThrottleRepository;
  readonly interactions: InteractionRepository;
  readonly grants: GrantRepository;
  readonly codes: AuthorizationCodeRepository;
  readonly refreshTokens: RefreshTokenRepository;
  readonly janitor: JanitorRepository;
  readonly deviceCodes: DeviceCodeRepository;
  readonly rateLimits: RateLimitRepository;

  constructor(readonly handle: DatabaseHandle) {
    const db = handle.db;
    this.clients = new ClientRepository(db, handle.readRows);
    this.resources = new ResourceRepository(db);
    this.keys = new KeyRepository(db);
    this.initialAccessTokens = new InitialAccessTokenRepository(db);
    this.accessTokens = new AccessTokenRepository(db, handle.readRows);
    this.assertions = new AssertionRepository(db);
    this.users = new UserRepository(db);
    this.sessions = new BrowserSessionRepository(db);
    this.loginThrottle = new LoginThrottleRepository(db);
    this.interactions = new InteractionRepository(db);
    this.grants = new GrantRepository(db);
    this.codes = new AuthorizationCodeRepository(db);
    this.refreshTokens = new RefreshTokenRepository(db);
    this.janitor = new JanitorRepository(db);
    this.deviceCodes = new DeviceCodeRepository(db);
    this.rateLimits = new RateLimitRepository(db);
    this.#generationsSql = db.selectFrom('generations').select(['name', 'value']).compile().sql;
  }

  /** The generation counters of the cached tables (see cache/change-watcher.ts). */
  async readGenerations(): Promise<Map<string, number>> {
    const rows = (await this.handle.readRows(this.#generationsSql, [])) as { name: string; value: number }[];
    return new Map(rows.map((r) => [r.name, Number(r.value)]));
  }

  readonly #generationsSql: string;

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
