import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError } from '../../../src/errors';
import { CappedBuffer, captureCapped } from '../../../src/io/capped-buffer';
import { waitFor } from '../../harness/util';
import { cleanupTempDirs, killChildren } from '../../support/io-pipeline';

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

  it('drains a child process pipe the same way', async () => {
    const child = spawn('yes', [], { stdio: ['ignore', 'pipe', 'ignore'] });
    const sink = new CappedBuffer(1000);
    const done = captureCapped(child.stdout, 1000, sink);
    await waitFor('20 MB drained', () => sink.totalBytes > 20 * 1024 * 1024, { timeoutMs: 30000, intervalMs: 5 });
    child.kill('SIGKILL');
    const got = await done;
    expect(got.data.length).toBe(1000);
    expect(isAllY(got.data)).toBe(true);
    expect(got.truncated).toBe(true);
  }, 60000);
});
