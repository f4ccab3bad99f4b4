import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

/** Tables whose rows instances keep in memory, each with a generation counter. */
export type CachedTable = 'clients' | 'resources';

/** Marks a cached table changed, inside the transaction that changes it. */
export async function bumpGeneration(trx: Transaction<Database> | Kysely<Database>, table: CachedTable): Promise<void> {
  await trx
    .updateTable('generations')
    .set((eb) => ({ value: eb('value', '+', 1) }))
    .where('name', '=', table)
    .execute();
}

/** Listeners told after a committed change through this process. */
export class ChangeListeners {
  readonly #listeners: (() => void)[] = [];

  add(listener: () => void): void {
    this.#listeners.push(listener);
  }

  notify(): void {
    for (const listener of this.#listeners) listener();
  }
}
