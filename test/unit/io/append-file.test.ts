/**
 * AppendFile, the log file under the CRI log writer: a full disk must cost
 * log lines, never the container (blocked on a full pipe) or the daemon; and
 * a disk that throttles writers must not stall the event loop.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AppendFile, SyncWritePolicy } from '../../../src/io/append-file';
import { silentLogger } from '../../../src/log/logger';
import { cleanupTempDirs, tempDir } from './helpers';

const mounts: string[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
  cleanupTempDirs();
});

/** A tmpfs of `bytes` bytes: a disk that really fills up (needs root, as the integration tests do). */
function tinyDisk(bytes: number): string {
  const dir = tempDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

// Mounting needs root, as the integration tests do; elsewhere this part is skipped, not faked.
const asRoot = process.getuid?.() === 0 ? it : it.skip;

describe('AppendFile on a full disk', () => {
  asRoot('drops what does not fit, counts it, keeps accepting writes, and resumes once space is freed', async () => {
    const disk = tinyDisk(256 * 1024);
    const filler = path.join(disk, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(200 * 1024));
    const file = await AppendFile.open({ path: path.join(disk, 'logs', '0.log'), mode: 0o640, highWaterMark: 1 << 20, logger: silentLogger() });
    const block = Buffer.alloc(16 * 1024, 0x61);
    let doneCalls = 0;
    for (let i = 0; i < 32; i++) file.write([block], () => doneCalls++);
    await file.flush();
    expect(doneCalls).toBe(32); // every buffer handed back, written or not
    expect(file.writeErrors).toBeGreaterThan(0);
    expect(file.bytesWritten).toBeLessThan(64 * 1024);
    // Nothing is both counted as written and as dropped; a short write's tail may be retried and then dropped.
    expect(file.bytesWritten + file.droppedBytes).toBe(32 * block.length);
    expect(file.queuedBytes).toBe(0);

    fs.rmSync(filler);
    const before = file.bytesWritten;
    file.write([Buffer.from('after the disk was freed\n')]);
    await file.flush();
    expect(file.bytesWritten).toBe(before + 25);
    await file.close();
    expect(fs.readFileSync(path.join(disk, 'logs', '0.log')).subarray(before).toString()).toBe('after the disk was freed\n');
  });
});

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
