import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError } from '../../../src/errors';
import { CappedBuffer, captureCapped } from '../../../src/io/capped-buffer';
import { createFifo, openFifoReader } from '../../../src/io/fifo';
import { cleanupTempDirs, killChildren, openWriteEnd, runWriter, tempDir, waitFor } from './helpers';

afterEach(() => {
  killChildren();
  cleanupTempDirs();
});

function isAllY(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== (i % 2 === 0 ? 0x79 : 0x0a)) return false;
  return true;
}

describe('CappedBuffer', () => {
  it('keeps everything below the cap, exactly', async () => {
    const got = await captureCapped(Readable.from([Buffer.from('abc'), Buffer.from('def')]), 10);
    expect(got).toEqual({ data: Buffer.from('abcdef'), truncated: false, totalBytes: 6 });
  });

  it('is not truncated at exactly maxBytes and is one byte later', async () => {
    const exact = await captureCapped(Readable.from([Buffer.from('12345'), Buffer.from('67890')]), 10);
    expect(exact.truncated).toBe(false);
    expect(exact.data.toString()).toBe('1234567890');
    const over = await captureCapped(Readable.from([Buffer.from('12345'), Buffer.from('678901')]), 10);
    expect(over).toEqual({ data: Buffer.from('1234567890'), truncated: true, totalBytes: 11 });
  });

  it('works as a pipeline sink that never applies back-pressure', async () => {
    const sink = new CappedBuffer(4);
    await pipeline(Readable.from(['hello', ' ', 'world']), sink);
    expect(sink.data().toString()).toBe('hell');
    expect(sink.truncated).toBe(true);
    expect(sink.totalBytes).toBe(11);
    expect(() => new CappedBuffer(-1)).toThrow(InvalidArgumentError);
  });

  it('resolves with what arrived when the source is destroyed, and rejects on an error', async () => {
    const a = new PassThrough();
    const pa = captureCapped(a, 100);
    a.write('partial');
    await new Promise((r) => setImmediate(r));
    a.destroy();
    expect((await pa).data.toString()).toBe('partial');
    const b = new PassThrough();
    const pb = captureCapped(b, 100);
    b.destroy(new Error('boom'));
    await expect(pb).rejects.toThrow(/boom/);
  });

  it('drains `yes` through a real FIFO far past the cap with bounded memory', async () => {
    const fifo = path.join(tempDir(), 'exec-stdout');
    await createFifo(fifo);
    const reader = await openFifoReader(fifo);
    const w = runWriter('exec yes', openWriteEnd(fifo));
    reader.upgradeToEof();
    const sink = new CappedBuffer(64 * 1024);
    const rss0 = process.memoryUsage().rss;
    const done = captureCapped(reader, sink.maxBytes, sink);
    // If draining stopped at the cap, `yes` would block on the full pipe and this would time out.
    await waitFor(() => sink.totalBytes > 200 * 1024 * 1024, 60000, '200 MB drained');
    const rssGrowth = process.memoryUsage().rss - rss0;
    w.child.kill('SIGKILL');
    const got = await done;
    expect(got.truncated).toBe(true);
    expect(got.data.length).toBe(64 * 1024);
    expect(isAllY(got.data)).toBe(true);
    expect(got.totalBytes).toBeGreaterThan(200 * 1024 * 1024);
    expect(rssGrowth).toBeLessThan(50 * 1024 * 1024);
  }, 90000);

  it('drains a child process pipe the same way', async () => {
    const child = spawn('yes', [], { stdio: ['ignore', 'pipe', 'ignore'] });
    const sink = new CappedBuffer(1000);
    const done = captureCapped(child.stdout, 1000, sink);
    await waitFor(() => sink.totalBytes > 20 * 1024 * 1024, 30000, '20 MB drained');
    child.kill('SIGKILL');
    const got = await done;
    expect(got.data.length).toBe(1000);
    expect(isAllY(got.data)).toBe(true);
    expect(got.truncated).toBe(true);
  }, 60000);
});
