import * as fs from 'node:fs';
import * as path from 'node:path';
import { CriClock, formatRfc3339Nano } from '../../../src/io/cri-log-clock';
import { sleep, waitFor } from '../../harness/util';
import { cleanupTempDirs, CriRecord, killChildren, parseCriLog, setupLogPipeline as setup, simple, tsToNs } from '../../support/io-pipeline';

afterEach(() => {
  killChildren();
  cleanupTempDirs();
});

function expectMonotonic(records: CriRecord[]): void {
  let prev = 0n;
  for (const [i, r] of records.entries()) {
    const ns = tsToNs(r.ts); // throws unless RFC3339Nano
    if (ns < prev) throw new Error(`timestamp of record ${i} (${r.ts}) is before the previous one`);
    prev = ns;
  }
}

describe('formatRfc3339Nano', () => {
  it('formats like Go time.RFC3339Nano in UTC', () => {
    expect(formatRfc3339Nano(1475713029669794202n)).toBe('2016-10-06T00:17:09.669794202Z');
    expect(formatRfc3339Nano(1475713029669794200n)).toBe('2016-10-06T00:17:09.6697942Z');
    expect(formatRfc3339Nano(1475713029000000001n)).toBe('2016-10-06T00:17:09.000000001Z');
    expect(formatRfc3339Nano(1475713029500000000n)).toBe('2016-10-06T00:17:09.5Z');
    expect(formatRfc3339Nano(1475713029000000000n)).toBe('2016-10-06T00:17:09Z');
    expect(formatRfc3339Nano(0n)).toBe('1970-01-01T00:00:00Z');
  });

  it('round-trips through the parser used by the tests', () => {
    for (const ns of [1n, 10n, 999999999n, 1700000000123456789n, 1700000000100000000n]) {
      expect(tsToNs(formatRfc3339Nano(ns))).toBe(ns);
    }
  });
});

describe('CriClock', () => {
  it('never goes backwards, has sub-millisecond resolution and tracks the wall clock', () => {
    const clock = new CriClock();
    let prev = clock.nowNs();
    const seen = new Set<bigint>();
    for (let i = 0; i < 100000; i++) {
      const t = clock.nowNs();
      if (t < prev) throw new Error(`clock went back from ${prev} to ${t}`);
      seen.add(t % 1_000_000n);
      prev = t;
    }
    expect(seen.size).toBeGreaterThan(10);
    const wall = BigInt(Date.now()) * 1_000_000n;
    const diff = prev > wall ? prev - wall : wall - prev;
    expect(diff).toBeLessThan(50_000_000n);
  });
});

describe('CriLogWriter through real FIFOs', () => {
  it('writes exact CRI records for interleaved stdout and stderr', async () => {
    const t = await setup();
    const before = BigInt(Date.now() - 1000) * 1_000_000n;
    const w = t.run(
      `printf 'out one\\n'; sleep 0.05; printf 'err one\\n' >&2; sleep 0.05; ` +
        `printf 'out two\\nout three\\n'; sleep 0.05; printf 'err two\\n' >&2`,
    );
    expect(await w.exited).toBe(0);
    await t.done();
    const after = BigInt(Date.now() + 1000) * 1_000_000n;
    const recs = t.records();
    expect(simple(recs)).toEqual([
      ['stdout', 'F', 'out one'],
      ['stderr', 'F', 'err one'],
      ['stdout', 'F', 'out two'],
      ['stdout', 'F', 'out three'],
      ['stderr', 'F', 'err two'],
    ]);
    expectMonotonic(recs);
    expect(tsToNs(recs[0]!.ts)).toBeGreaterThan(before);
    expect(tsToNs(recs[4]!.ts)).toBeLessThan(after);
    // Byte-exact layout of one line.
    const firstLine = fs.readFileSync(t.logPath, 'latin1').split('\n')[0];
    expect(firstLine).toBe(`${recs[0]!.ts} stdout F out one`);
    expect(t.writer.linesWritten).toBe(5);
    expect(t.writer.bytesWritten).toBe(fs.statSync(t.logPath).size);
  });

  it('keeps timestamps monotonic over many lines from both streams', async () => {
    const t = await setup();
    const w = t.run(`seq 1 20000; seq 1 20000 >&2`);
    await w.exited;
    await t.done();
    const recs = t.records();
    expect(recs.length).toBe(40000);
    expectMonotonic(recs);
    expect(recs.filter((r) => r.stream === 'stderr').map((r) => Number(r.content.toString()))).toEqual(
      Array.from({ length: 20000 }, (_, i) => i + 1),
    );
  });

  it('creates the log 0640 in a new directory', async () => {
    const t = await setup();
    await t.run(`printf 'x\\n'`).exited;
    await t.done();
    expect(fs.statSync(t.logPath).mode & 0o777).toBe(0o640);
  });

  it('splits a 40 KiB line into P, P, F records of 16 KiB, 16 KiB and the rest', async () => {
    const t = await setup();
    const line = Buffer.alloc(40 * 1024);
    for (let i = 0; i < line.length; i++) line[i] = 0x61 + ((i * 31 + (i >> 12)) % 26);
    const src = path.join(t.dir, 'long');
    fs.writeFileSync(src, Buffer.concat([line, Buffer.from('\nshort\n')]));
    await t.run(`cat ${src}`).exited;
    await t.done();
    const recs = t.records();
    expect(recs.map((r) => [r.tag, r.content.length])).toEqual([
      ['P', 16384],
      ['P', 16384],
      ['F', 8192],
      ['F', 5],
    ]);
    expect(Buffer.concat(recs.slice(0, 3).map((r) => r.content)).equals(line)).toBe(true);
  });

  it('splits at exactly maxLineBytes the way containerd does, not counting "\\r\\n"', async () => {
    const t = await setup({ maxLineBytes: 8 });
    await t.run(`printf '12345678\\n123456789\\n12345678\\r\\n1234567890123456\\n'`).exited;
    await t.done();
    expect(simple(t.records()).map(([, tag, c]) => [tag, c])).toEqual([
      ['F', '12345678'],
      ['P', '12345678'],
      ['F', '9'],
      ['F', '12345678'],
      ['P', '12345678'],
      ['F', '90123456'],
    ]);
  });

  it('writes an unterminated line as P after the flush delay, while the writer still runs', async () => {
    const t = await setup();
    const w = t.run(`printf 'Password: '; sleep 2; printf 'ok\\n'`);
    await waitFor('the P record before the newline', () => fs.statSync(t.logPath).size > 0, { timeoutMs: 1500, intervalMs: 5 });
    expect(simple(t.records())).toEqual([['stdout', 'P', 'Password: ']]);
    expect(w.child.exitCode).toBeNull();
    await w.exited;
    await t.done();
    expect(simple(t.records())).toEqual([
      ['stdout', 'P', 'Password: '],
      ['stdout', 'F', 'ok'],
    ]);
  });

  it('does not fragment a line whose pieces arrive within the flush delay', async () => {
    const t = await setup({ partialFlushMs: 1000 });
    await t.run(`printf 'abc'; sleep 0.1; printf 'def\\n'`).exited;
    await t.done();
    expect(simple(t.records())).toEqual([['stdout', 'F', 'abcdef']]);
  });

  it('strips "\\r\\n" and keeps other "\\r", writes empty lines, and ends with P at EOF', async () => {
    const t = await setup();
    await t.run(`printf 'a\\r\\nb\\rc\\n\\n\\r\\nlast\\r'`).exited;
    await t.done();
    expect(simple(t.records())).toEqual([
      ['stdout', 'F', 'a'],
      ['stdout', 'F', 'b\rc'],
      ['stdout', 'F', ''],
      ['stdout', 'F', ''],
      ['stdout', 'P', 'last\r'],
    ]);
  });

  it('holds back a trailing "\\r" on a timed flush so a late "\\n" still strips it', async () => {
    const t = await setup({ partialFlushMs: 50 });
    await t.run(`printf 'progress\\r'; sleep 0.4; printf '\\n'`).exited;
    await t.done();
    expect(simple(t.records())).toEqual([
      ['stdout', 'P', 'progress'],
      ['stdout', 'F', ''],
    ]);
  });

  it('is binary-safe: splits on 0x0a only and never re-encodes', async () => {
    const t = await setup();
    const lines: Buffer[] = [];
    for (let n = 0; n < 50; n++) {
      const b = Buffer.alloc(100 + n * 37);
      for (let i = 0; i < b.length; i++) {
        const v = (i * 131 + n * 17) & 0xff;
        b[i] = v === 0x0a ? 0x0b : v;
      }
      lines.push(b);
    }
    lines.push(Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc, 0x00, 0xff, 0xfe]));
    const src = path.join(t.dir, 'bin');
    fs.writeFileSync(src, Buffer.concat(lines.flatMap((l) => [l, Buffer.from([0x0a])])));
    await t.run(`cat ${src}`).exited;
    await t.done();
    const recs = t.records();
    expect(recs.length).toBe(lines.length);
    recs.forEach((r, i) => {
      expect(r.tag).toBe('F');
      // A trailing 0x0d would be stripped as "\r\n"; none of the lines ends in one.
      expect(r.content.equals(lines[i]!)).toBe(true);
    });
  });

  it('resolves `ended` and emits sourcesEnded once the writer exits (EOF through the FIFOs)', async () => {
    const t = await setup();
    let emitted = false;
    t.writer.on('sourcesEnded', () => (emitted = true));
    const w = t.run(`printf 'x\\n'; sleep 0.3; printf 'tail-without-newline'`);
    await sleep(100);
    expect(t.writer.sourcesEnded).toBe(false);
    await w.exited;
    await t.writer.ended;
    expect(emitted).toBe(true);
    expect(t.writer.sourcesEnded).toBe(true);
    expect(simple(t.records())).toEqual([
      ['stdout', 'F', 'x'],
      ['stdout', 'P', 'tail-without-newline'],
    ]);
    await t.done();
  });

  it('handles a tty-style single stdout source', async () => {
    const t = await setup({}, false);
    await t.run(`printf 'only\\n'`).exited;
    await t.done();
    expect(simple(t.records())).toEqual([['stdout', 'F', 'only']]);
  });

  it('close() writes a pending partial line and leaves the file complete on disk', async () => {
    const t = await setup({ partialFlushMs: 0 });
    const w = t.run(`printf 'line\\nhalf'; sleep 5`);
    await waitFor('input', () => t.writer.stats.bytesRead === 9, { timeoutMs: 5000, intervalMs: 5 });
    await t.writer.close();
    expect(simple(t.records())).toEqual([
      ['stdout', 'F', 'line'],
      ['stdout', 'P', 'half'],
    ]);
    await t.writer.ended;
    w.child.kill('SIGKILL');
    await t.io.close();
  });

  it('reopen() after a rename loses and duplicates nothing while a writer writes continuously', async () => {
    const t = await setup();
    const total = 300000;
    // Written in bursts so the rotations land mid-stream, as the kubelet's do.
    const script =
      `let i=0;const fs=require('fs');` +
      `function burst(){let s='';for(let k=0;k<500&&i<${total};k++)s+='seq '+(i++)+'\\n';` +
      `fs.writeSync(1,s);if(i<${total})setTimeout(burst,2)}burst()`;
    const w = t.run(`exec node -e "${script}"`);
    await waitFor('the first output', () => t.writer.stats.bytesRead > 0, { timeoutMs: 30000, intervalMs: 5 });
    const rotated: string[] = [];
    let duringWrite = 0;
    for (let n = 1; n <= 10 && w.child.exitCode === null; n++) {
      await sleep(40);
      const target = `${t.logPath}.${n}`;
      fs.renameSync(t.logPath, target);
      rotated.push(target);
      await t.writer.reopen();
      if (w.child.exitCode === null) duringWrite++;
    }
    expect(await w.exited).toBe(0);
    await t.done();
    expect(duringWrite).toBeGreaterThanOrEqual(3);
    const files = [...rotated, t.logPath];
    const seqs: number[] = [];
    let nonEmpty = 0;
    for (const f of files) {
      const recs = parseCriLog(fs.readFileSync(f));
      if (recs.length > 0) nonEmpty++;
      for (const r of recs) {
        // Plain checks: 300k jest expect() calls alone take seconds.
        if (r.tag !== 'F') throw new Error(`unexpected ${r.tag} record in ${f}`);
        seqs.push(Number(r.content.toString().slice(4)));
      }
    }
    expect(nonEmpty).toBeGreaterThanOrEqual(3);
    expect(seqs.length).toBe(total);
    for (let i = 0; i < total; i++) if (seqs[i] !== i) throw new Error(`record ${i} is seq ${seqs[i]}`);
  }, 60000);

  it('pauses the sources when the file falls behind and still delivers everything in order', async () => {
    // A 1-byte high-water mark makes every chunk hit back-pressure.
    const t = await setup({ highWaterMark: 1 });
    await t.run(`seq 1 200000`).exited;
    await t.done();
    const recs = t.records();
    expect(recs.length).toBe(200000);
    for (let i = 0; i < recs.length; i++) {
      if (recs[i]!.content.toString() !== String(i + 1)) throw new Error(`record ${i}: ${recs[i]!.content}`);
    }
    expect(t.writer.stats.backpressurePauses).toBeGreaterThan(10);
  }, 60000);
});
