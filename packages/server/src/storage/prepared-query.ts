import { CompiledQuery, type Compilable, type Kysely } from 'kysely';

/**
 * A query built and compiled once, then run with new arguments: the token endpoint's hot lookups
 * skip Kysely's per-call building and compiling. The query is compiled with sentinel arguments
 * to learn where each argument lands among the dialect's parameters.
 */
export class PreparedQuery<Args extends readonly (string | number)[], Row> {
  #compiled: { sql: string; slots: number[] } | undefined;

  constructor(
    private readonly db: Kysely<unknown>,
    private readonly build: (...args: Args) => Compilable<Row>,
    private readonly sentinels: Args,
  ) {}

  async execute(...args: Args): Promise<Row[]> {
    const compiled = (this.#compiled ??= this.#compile());
    const parameters = compiled.slots.map((slot) => args[slot]);
    const result = await this.db.executeQuery<Row>(CompiledQuery.raw(compiled.sql, parameters));
    return result.rows;
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
