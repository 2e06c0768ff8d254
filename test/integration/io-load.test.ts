/**
 * The log and exec output paths under sustained load, on real FIFOs (no
 * containerd): hundreds of megabytes through the CRI log writer and the
 * capped exec buffer with the event loop and memory watched. They take tens
 * of seconds and a core, so they live with the integration tests.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CappedBuffer, captureCapped } from '../../src/io/capped-buffer';
import { createFifo, openFifoReader } from '../../src/io/fifo';
import { sleep, waitFor } from '../harness/util';
import { cleanupTempDirs, killChildren, openWriteEnd, runWriter, setupLogPipeline as setup, tempDir } from '../support/io-pipeline';

afterEach(() => {
  killChildren();
  cleanupTempDirs();
});

function openBlockingForAppend(p: string): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(p, fs.constants.O_WRONLY | fs.constants.O_APPEND, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
}

const LINE = 'The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklm';

/** Samples the event loop's longest gap and the peak RSS with a 10 ms timer in this process. */
function monitor() {
  const rss0 = process.memoryUsage().rss;
  let maxRss = rss0;
  let maxGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
  }, 10);
  return {
    stop: () => {
      clearInterval(timer);
      return { maxGap, rssGrowth: maxRss - rss0 };
    },
  };
}

describe('CriLogWriter under load', () => {
  it('streams 200 MB through a FIFO without blocking the event loop or growing memory', async () => {
    // A long flush delay keeps the record count exact: on a loaded 2-core
    // machine a line cut across two reads could otherwise wait >100 ms and
    // legitimately go out as P + F.
    const t = await setup({ partialFlushMs: 10000 });
    const total = 200 * 1024 * 1024;
    const mon = monitor();
    const t0 = performance.now();
    // The producer runs niced so that, on a small machine, it is not the
    // producer's own CPU use that delays this process's timer.
    const w = t.run(`exec nice -n 10 sh -c "yes '${LINE}' | head -c ${total}"`);
    await t.writer.ended;
    const seconds = (performance.now() - t0) / 1000;
    const { maxGap, rssGrowth } = mon.stop();
    expect(await w.exited).toBe(0);
    await t.done();
    const stats = t.writer.stats;
    process.stdout.write(
      `log writer, 200 MB of ${LINE.length + 1}-byte lines via FIFO: ${(total / 1048576 / seconds).toFixed(1)} MB/s in ` +
        `(${(stats.bytesWritten / 1048576 / seconds).toFixed(1)} MB/s of log), max event-loop gap ${maxGap.toFixed(1)} ms, ` +
        `RSS growth ${(rssGrowth / 1048576).toFixed(1)} MB, back-pressure pauses ${stats.backpressurePauses}\n`,
    );
    expect(stats.bytesRead).toBe(total);
    const fullLines = Math.floor(total / (LINE.length + 1));
    expect(stats.linesWritten).toBe(fullLines + 1); // plus the cut-off last line as P
    expect(Number(execFileSync('wc', ['-l', t.logPath]).toString().split(' ')[0])).toBe(fullLines + 1);
    expect(stats.bytesWritten).toBe(fs.statSync(t.logPath).size);
    expect(maxGap).toBeLessThan(200);
    expect(rssGrowth).toBeLessThan(100 * 1024 * 1024);
  }, 120000);

  it('holds a fast producer back when the log sink is slow, instead of buffering', async () => {
    // The "disk" is a FIFO drained at about 6 MB/s by a child process, so the
    // file side is far slower than `yes`; only back-pressure reaching the
    // source FIFO keeps memory bounded.
    const dir = tempDir();
    const sinkPath = path.join(dir, 'slow-disk');
    await createFifo(sinkPath);
    const drain = spawn(
      'node',
      [
        '-e',
        `const fs=require('fs');const fd=fs.openSync(process.argv[1],'r');const b=Buffer.alloc(65536);` +
          `(function r(){if(fs.readSync(fd,b)>0)setTimeout(r,10)})()`,
        sinkPath,
      ],
      { stdio: 'ignore' },
    );
    try {
      // The adapter opens only regular files as logs (non-blocking, so a FIFO is refused at
      // once); here the FIFO is the point, so it is opened blocking, as a slow disk would be.
      const t = await setup({ path: sinkPath, highWaterMark: 1024 * 1024, open: openBlockingForAppend }, true, dir);
      const mon = monitor();
      let maxQueued = 0;
      const sampler = setInterval(() => (maxQueued = Math.max(maxQueued, t.writer.stats.queuedBytes)), 5);
      t.run(`exec nice -n 10 yes '${LINE}'`);
      await sleep(3000);
      clearInterval(sampler);
      const { maxGap, rssGrowth } = mon.stop();
      const s = t.writer.stats;
      process.stdout.write(
        `slow sink: read ${(s.bytesRead / 1048576).toFixed(1)} MB, wrote ${(s.bytesWritten / 1048576).toFixed(1)} MB in 3 s, ` +
          `max queued ${(maxQueued / 1048576).toFixed(2)} MB, pauses ${s.backpressurePauses}, max gap ${maxGap.toFixed(1)} ms\n`,
      );
      // Unbounded buffering would have read `yes` at hundreds of MB/s.
      expect(s.bytesRead).toBeLessThan(60 * 1024 * 1024);
      // Formatted but unwritten bytes stay near the high-water mark (plus one batch).
      expect(maxQueued).toBeLessThan(4 * 1024 * 1024);
      expect(s.backpressurePauses).toBeGreaterThan(0);
      expect(maxGap).toBeLessThan(200);
      expect(rssGrowth).toBeLessThan(100 * 1024 * 1024);
      killChildren();
      await t.writer.ended;
      await t.writer.close();
      await t.io.close();
    } finally {
      drain.kill('SIGKILL');
    }
  }, 60000);
});

function isAllY(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== (i % 2 === 0 ? 0x79 : 0x0a)) return false;
  return true;
}

describe('CappedBuffer under load', () => {
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
    await waitFor('200 MB drained', () => sink.totalBytes > 200 * 1024 * 1024, { timeoutMs: 60000, intervalMs: 5 });
    const rssGrowth = process.memoryUsage().rss - rss0;
    w.child.kill('SIGKILL');
    const got = await done;
    expect(got.truncated).toBe(true);
    expect(got.data.length).toBe(64 * 1024);
    expect(isAllY(got.data)).toBe(true);
    expect(got.totalBytes).toBeGreaterThan(200 * 1024 * 1024);
    expect(rssGrowth).toBeLessThan(50 * 1024 * 1024);
  }, 90000);
});
