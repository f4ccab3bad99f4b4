import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logging.js';
import { UsageRecorder } from '../../src/usage-recorder.js';

/** What a repository's batch write received; the first `failures` writes fail as storage would. */
function writer(failures = 0) {
  const written: Array<{ ids: string[]; at: number }> = [];
  let left = failures;
  return {
    written,
    write: async (ids: readonly string[], at: number) => {
      if (left-- > 0) throw new Error('storage unavailable');
      written.push({ ids: [...ids].sort(), at });
    },
  };
}

describe('UsageRecorder', () => {
  it('notes an id once per interval and writes the batch behind, grouped by time', async () => {
    const w = writer();
    const recorder = new UsageRecorder(w.write, createLogger('silent'), 'grant', 60, 20);
    recorder.record('a', 100);
    recorder.record('b', 100);
    recorder.record('a', 159); // within the minute: not noted again
    recorder.record('c', 101);
    expect(w.written).toEqual([]);
    await recorder.close();
    expect(w.written).toEqual([
      { ids: ['a', 'b'], at: 100 },
      { ids: ['c'], at: 101 },
    ]);
  });

  it('tries a failed batch again at the next flush, keeping a later use of the same id', async () => {
    const w = writer(1);
    const recorder = new UsageRecorder(w.write, createLogger('silent'), 'grant', 60, 20);
    recorder.record('a', 100);
    recorder.record('b', 100);
    await recorder.flush(); // fails
    expect(w.written).toEqual([]);
    recorder.record('c', 170);
    recorder.record('a', 170); // a minute later: noted again, and later than the failed one
    await recorder.close();
    expect(w.written).toEqual([
      { ids: ['a', 'c'], at: 170 },
      { ids: ['b'], at: 100 },
    ]);
  });

  it('writes nothing after close (a request finishing past the shutdown deadline)', async () => {
    const w = writer();
    const recorder = new UsageRecorder(w.write, createLogger('silent'), 'client', 60, 20);
    await recorder.close();
    recorder.record('late', 100);
    await new Promise((resolve) => setTimeout(resolve, 60));
    await recorder.flush();
    expect(w.written).toEqual([]);
  });
});
