/**
 * AppendFile, the log file under the CRI log writer: a disk that throttles
 * writers must not stall the event loop. (The full-disk case needs a real
 * tmpfs, so it is in test/integration/io-full-disk.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../../src/errors';
import { openRegularFileForAppend, SyncWritePolicy } from '../../../src/io/append-file';

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

describe('openRegularFileForAppend', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'append-open-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates and opens a regular file with the given mode', async () => {
    const p = path.join(dir, 'a.log');
    const fd = await openRegularFileForAppend(p, 0o640);
    fs.writeSync(fd, 'x\n');
    fs.closeSync(fd);
    expect(fs.statSync(p).mode & 0o777).toBe(0o640);
    expect(fs.readFileSync(p, 'utf8')).toBe('x\n');
  });

  it('refuses a FIFO at once, with or without a reader, instead of waiting for one', async () => {
    const p = path.join(dir, 'fifo.log');
    execFileSync('mkfifo', [p]);
    const t0 = Date.now();
    await expect(openRegularFileForAppend(p, 0o640)).rejects.toThrow(/ENXIO|not a regular file/);
    const reader = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      await expect(openRegularFileForAppend(p, 0o640)).rejects.toThrow(InvalidArgumentError);
    } finally {
      fs.closeSync(reader);
    }
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('refuses a directory', async () => {
    await expect(openRegularFileForAppend(dir, 0o640)).rejects.toThrow(/EISDIR|not a regular file/);
  });
});
