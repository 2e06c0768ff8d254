/**
 * AppendFile, the log file under the CRI log writer, on a disk that really
 * fills up: a full disk must cost log lines, never the container (blocked on
 * a full pipe) or the daemon, and logging resumes once space is back.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AppendFile } from '../../src/io/append-file';
import { silentLogger } from '../../src/log/logger';
import { cleanupTempDirs, tempDir } from '../support/io-pipeline';

const mounts: string[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
  cleanupTempDirs();
});

/** A tmpfs of `bytes` bytes: a disk that really fills up (mounting needs root, which the integration tests have). */
function tinyDisk(bytes: number): string {
  const dir = tempDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

describe('AppendFile on a full disk', () => {
  it('drops what does not fit, counts it, keeps accepting writes, and resumes once space is freed', async () => {
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

