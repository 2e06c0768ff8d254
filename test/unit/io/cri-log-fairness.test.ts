/**
 * maxBytesPerTurn: one container's output must not hold up another's log
 * lines (or anything else on the event loop) for longer than it takes to
 * process the configured number of bytes in one event-loop turn.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { CriLogWriter } from '../../../src/io/cri-log-writer';
import { silentLogger } from '../../../src/log/logger';
import { cleanupTempDirs, killChildren, parseCriLog, setupLogPipeline, tempDir } from '../../support/io-pipeline';

afterEach(() => {
  killChildren();
  cleanupTempDirs();
});

const LINE = Buffer.from(`${'x'.repeat(99)}\n`);

/**
 * The worst case for fairness: a source that always has output ready and
 * hands it over synchronously, so nothing but the writer itself can stop it
 * from being drained in a single turn.
 */
function firehose(totalBytes: number, chunkBytes = 16 * 1024): Readable {
  const chunk = Buffer.alloc(chunkBytes);
  for (let i = 0; i < chunkBytes; i += LINE.length) LINE.copy(chunk, i);
  let left = totalBytes;
  return new Readable({
    highWaterMark: chunkBytes,
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, chunkBytes);
      left -= n;
      this.push(chunk.subarray(0, n));
    },
  });
}

interface FairnessRun {
  /** Most bytes the busy writer read in one event-loop turn. */
  maxBytesInTurn: number;
  /** Longest wait, in ms, between a quiet line being written and the quiet writer reading it. */
  maxQuietDelayMs: number;
  quietLines: number;
  busyLogBytes: number;
}

/** A busy writer on a firehose next to a quiet writer fed one line every 2 ms. */
async function runBusyAndQuiet(maxBytesPerTurn: number, totalBytes: number): Promise<FairnessRun> {
  const dir = tempDir();
  const busy = await CriLogWriter.open({
    path: path.join(dir, 'busy.log'),
    sources: [{ stream: 'stdout', readable: firehose(totalBytes) }],
    logger: silentLogger(),
    maxBytesPerTurn,
  });
  const quietIn = new PassThrough();
  const quiet = await CriLogWriter.open({
    path: path.join(dir, 'quiet.log'),
    sources: [{ stream: 'stdout', readable: quietIn }],
    logger: silentLogger(),
    maxBytesPerTurn,
  });

  let maxBytesInTurn = 0;
  // The busy writer has been running since it was opened; measure from here.
  let lastRead = busy.stats.bytesRead;
  let busyDone = false;
  const sampleTurn = (): void => {
    const read = busy.stats.bytesRead;
    maxBytesInTurn = Math.max(maxBytesInTurn, read - lastRead);
    lastRead = read;
    if (!busyDone) setImmediate(sampleTurn);
  };
  setImmediate(sampleTurn);

  // Each quiet line carries the time it was written; the quiet writer's
  // bytesRead tells when it was taken in.
  const sentAt: number[] = [];
  let maxQuietDelayMs = 0;
  let seen = 0;
  const watchQuiet = setInterval(() => {
    while (seen < sentAt.length && quiet.stats.bytesRead >= (seen + 1) * 7) {
      maxQuietDelayMs = Math.max(maxQuietDelayMs, performance.now() - sentAt[seen]!);
      seen++;
    }
  }, 1);
  const feed = setInterval(() => {
    sentAt.push(performance.now());
    quietIn.write(`${String(sentAt.length % 1e6).padStart(6, '0')}\n`);
  }, 2);

  await busy.ended;
  busyDone = true;
  clearInterval(feed);
  quietIn.end();
  await quiet.ended;
  clearInterval(watchQuiet);
  await Promise.all([busy.close(), quiet.close()]);
  const quietRecords = parseCriLog(fs.readFileSync(path.join(dir, 'quiet.log')));
  expect(quietRecords.map((r) => Number(r.content.toString()))).toEqual(sentAt.map((_, i) => (i + 1) % 1e6));
  return {
    maxBytesInTurn,
    maxQuietDelayMs,
    quietLines: quietRecords.length,
    busyLogBytes: fs.statSync(path.join(dir, 'busy.log')).size,
  };
}

describe('CriLogWriter turn budget (logging.maxBytesPerTurn)', () => {
  it('takes at most maxBytesPerTurn from a source that never runs dry, so a quiet writer keeps flowing', async () => {
    const total = 24 * 1024 * 1024;
    const fair = await runBusyAndQuiet(64 * 1024, total);
    process.stdout.write(
      `turn budget 64 KiB: busiest turn ${fair.maxBytesInTurn} B, quiet line delay max ${fair.maxQuietDelayMs.toFixed(1)} ms, ` +
        `${fair.quietLines} quiet lines\n`,
    );
    expect(fair.maxBytesInTurn).toBeLessThanOrEqual(64 * 1024);
    expect(fair.busyLogBytes).toBeGreaterThan(total);
    // The quiet writer got lines in throughout (one per 2 ms over the busy run) ...
    expect(fair.quietLines).toBeGreaterThan(20);
    // ... each within a few turns, not after the busy writer finished.
    expect(fair.maxQuietDelayMs).toBeLessThan(100);

    // The same measurement without a useful budget shows what it prevents:
    // the busy writer then stops only when its file falls 1 MiB behind.
    const unfair = await runBusyAndQuiet(1 << 30, total);
    process.stdout.write(
      `turn budget off: busiest turn ${unfair.maxBytesInTurn} B, quiet line delay max ${unfair.maxQuietDelayMs.toFixed(1)} ms\n`,
    );
    expect(unfair.maxBytesInTurn).toBeGreaterThan(8 * 64 * 1024);
  }, 60000);

  it('keeps every byte in order when chunks are cut at the budget, across both streams', async () => {
    // A budget that is not a multiple of anything the producer writes cuts
    // chunks mid-line; the rest waits for the next turn, in front of newer bytes.
    const t = await setupLogPipeline({ maxBytesPerTurn: 777, partialFlushMs: 10000 });
    const w = t.run('i=0; while [ $i -lt 3000 ]; do echo "out $i abcdefghijklmnopqrstuvwxyz"; echo "err $i" >&2; i=$((i+1)); done');
    expect(await w.exited).toBe(0);
    await t.done();
    const records = t.records();
    const out = records.filter((r) => r.stream === 'stdout').map((r) => r.content.toString());
    const err = records.filter((r) => r.stream === 'stderr').map((r) => r.content.toString());
    expect(out).toEqual(Array.from({ length: 3000 }, (_, i) => `out ${i} abcdefghijklmnopqrstuvwxyz`));
    expect(err).toEqual(Array.from({ length: 3000 }, (_, i) => `err ${i}`));
    expect(records.every((r) => r.tag === 'F')).toBe(true);
    expect(t.writer.stats.turnYields).toBeGreaterThan(0);
  });

  it('refuses a budget that is not a positive integer', async () => {
    const dir = tempDir();
    for (const bad of [0, -1, 1.5]) {
      await expect(
        CriLogWriter.open({ path: path.join(dir, 'x.log'), sources: [], logger: silentLogger(), maxBytesPerTurn: bad }),
      ).rejects.toThrow(/maxBytesPerTurn/);
    }
  });
});
