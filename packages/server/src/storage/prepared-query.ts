import type { Compilable } from 'kysely';
import type { ReadRows } from './database.js';

/**
 * A read-only query built and compiled once by Kysely, then run with new arguments through the
 * handle's `readRows`: the token endpoint's hot lookups skip per-call building, compiling and
 * (on SQLite) the writing connection's mutex. The query is compiled with sentinel arguments to
 * learn where each argument lands among the dialect's parameters.
 */
export class PreparedRead<Args extends readonly (string | number)[], Row> {
  #compiled: { sql: string; slots: number[] } | undefined;

  constructor(
    private readonly readRows: ReadRows,
    private readonly build: (...args: Args) => Compilable<Row>,
    private readonly sentinels: Args,
  ) {}

  async execute(...args: Args): Promise<Row[]> {
    const compiled = (this.#compiled ??= this.#compile());
    return (await this.readRows(compiled.sql, compiled.slots.map((slot) => args[slot]))) as Row[];
  }

  #compile(): { sql: string; slots: number[] } {
    const { sql, parameters } = this.build(...this.sentinels).compile();
    const slots = parameters.map((p) => {
      const slot = this.sentinels.indexOf(p as string | number);
      if (slot === -1) throw new Error('prepared query has a parameter that is not an argument');
      return slot;
    });
    return { sql, slots };
  }
}
