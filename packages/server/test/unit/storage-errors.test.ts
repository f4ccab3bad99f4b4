import { describe, expect, it } from 'vitest';
import { isStorageUnavailable } from '../../src/storage/database.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('isStorageUnavailable: which database errors mean "retry later" (503), not a bug (500)', () => {
  it.each([
    ['connection refused', withCode('ECONNREFUSED'), true],
    ['PostgreSQL connection failure (08006)', withCode('08006'), true],
    ['PostgreSQL shutting down (57P01)', withCode('57P01'), true],
    ['PostgreSQL deadlock (40P01)', withCode('40P01'), true],
    ['PostgreSQL serialization failure (40001)', withCode('40001'), true],
    ['SQLite busy', withCode('SQLITE_BUSY'), true],
    ['SQLite I/O error', withCode('SQLITE_IOERR_WRITE'), true],
    ['a wrapped cause', new Error('outer', { cause: withCode('ECONNRESET') }), true],
    ['pg pool ended', new Error('Cannot use a pool after calling end on the pool'), true],
    ['unique violation (23505) is a bug or a conflict, not an outage', withCode('23505'), false],
    ['SQLite constraint', withCode('SQLITE_CONSTRAINT_UNIQUE'), false],
    ['a plain error', new Error('boom'), false],
    ['not an error', 'ECONNREFUSED', false],
  ])('%s → %s', (_name, err, expected) => {
    expect(isStorageUnavailable(err)).toBe(expected);
  });
});
