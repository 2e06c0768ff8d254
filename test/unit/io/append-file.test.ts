/**
 * AppendFile, the log file under the CRI log writer: a disk that throttles
 * writers must not stall the event loop. (The full-disk case needs a real
 * tmpfs, so it is in test/integration/io-full-disk.test.ts.)
 */
import { SyncWritePolicy } from '../../../src/io/append-file';

describe('SyncWritePolicy', () => {
  it('allows sync appends until one is slow, then refuses them for the back-off, then allows them again', () => {
    const p = new SyncWritePolicy(5, 1000);
    expect(p.allows(0)).toBe(true);
    expect(p.record(0.2, 10)).toBe(false);
    expect(p.allows(10)).toBe(true);
    expect(p.record(5, 20)).toBe(false); // at the threshold is still fast enough
    expect(p.record(40, 100)).toBe(true);
    expect(p.slowEpisodes).toBe(1);
    expect(p.allows(101)).toBe(false);
    expect(p.allows(1099)).toBe(false);
    expect(p.allows(1100)).toBe(true);
  });
});
