import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../../src/errors';
import { createFifo, createFifos, FifoReader, keepSpareFifos, openFifoReader, openFifoWriter, removeFifos, SPARE_FIFO_PREFIX } from '../../../src/io/fifo';
import { TaskIo } from '../../../src/io/task-io';
import { sleep, waitFor } from '../../harness/util';
import { cleanupTempDirs, killChildren, openFdsTo, openWriteEnd, runWriter, tempDir } from '../../support/io-pipeline';

afterEach(() => {
  killChildren();
  cleanupTempDirs();
});

function collect(r: FifoReader): { data: () => Buffer; ended: Promise<void>; isEnded: () => boolean } {
  const chunks: Buffer[] = [];
  let ended = false;
  r.on('data', (c: Buffer) => chunks.push(c));
  const endedP = new Promise<void>((resolve) =>
    r.on('end', () => {
      ended = true;
      resolve();
    }),
  );
  r.resume();
  return { data: () => Buffer.concat(chunks), ended: endedP, isEnded: () => ended };
}

describe('createFifo', () => {
  it('creates a 0600 FIFO and its missing parent directory', async () => {
    const p = path.join(tempDir(), 'a', 'b', 'x-stdout');
    await createFifo(p);
    const st = fs.statSync(p);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(p)).mode & 0o777).toBe(0o700);
  });

  it('refuses an existing path with AlreadyExists', async () => {
    const p = path.join(tempDir(), 'x');
    await createFifo(p);
    await expect(createFifo(p)).rejects.toBeInstanceOf(AlreadyExistsError);
  });

  it('answers many concurrent requests, each with its own FIFOs, without forking from this process', async () => {
    const dir = tempDir();
    await createFifos([path.join(dir, 'warm')]);
    const spawned: string[] = [];
    const cp = require('node:child_process') as typeof import('node:child_process');
    const realSpawn = cp.spawn;
    const realExecFile = cp.execFile;
    // Any process started from here would show up in these.
    (cp as { spawn: unknown }).spawn = (...a: unknown[]) => (spawned.push(String(a[0])), (realSpawn as (...x: unknown[]) => unknown)(...a));
    (cp as { execFile: unknown }).execFile = (...a: unknown[]) => (spawned.push(String(a[0])), (realExecFile as (...x: unknown[]) => unknown)(...a));
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => createFifos([path.join(dir, `${i}-out`), path.join(dir, `${i}-err`)])));
    } finally {
      cp.spawn = realSpawn;
      cp.execFile = realExecFile;
    }
    for (let i = 0; i < 20; i++) for (const s of ['out', 'err']) expect(fs.statSync(path.join(dir, `${i}-${s}`)).isFIFO()).toBe(true);
    expect(spawned).toEqual([]);
  });

  it('still creates a FIFO the long-lived shell cannot take (a newline in the name)', async () => {
    const p = path.join(tempDir(), 'odd\nname');
    await createFifos([p]);
    expect(fs.statSync(p).isFIFO()).toBe(true);
  });
});

describe('keepSpareFifos', () => {
  const spares = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith(SPARE_FIFO_PREFIX));

  it('makes FIFOs ahead, hands them out under the asked names and makes new ones; a stopped daemon\'s spares go', async () => {
    const dir = tempDir();
    const stale = path.join(dir, `${SPARE_FIFO_PREFIX}left-by-an-earlier-daemon`);
    await createFifo(stale);
    await keepSpareFifos(dir);
    await waitFor('four spares, the stale one gone', async () => (spares(dir).length === 4 && !fs.existsSync(stale) ? true : undefined));
    const before = spares(dir);
    const wanted = [path.join(dir, 'c1-stdout'), path.join(dir, 'c1-stderr')];
    await createFifos(wanted);
    for (const p of wanted) {
      const st = fs.statSync(p);
      expect(st.isFIFO()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
    }
    // Two of the spares became the FIFOs asked for (renamed, not made anew)...
    expect(before.filter((n) => !fs.existsSync(path.join(dir, n)))).toHaveLength(2);
    // ...and the stock is made up again in the background.
    await waitFor('the stock refilled', async () => (spares(dir).length === 4 ? true : undefined));
    for (const n of spares(dir)) expect(fs.statSync(path.join(dir, n)).isFIFO()).toBe(true);
  });

  it('falls back to mkfifo when a spare vanished (its directory was cleaned)', async () => {
    const dir = tempDir();
    await keepSpareFifos(dir);
    await waitFor('four spares', async () => (spares(dir).length === 4 ? true : undefined));
    for (const n of spares(dir)) fs.unlinkSync(path.join(dir, n));
    const p = path.join(dir, 'c2-stdout');
    await createFifos([p]);
    expect(fs.statSync(p).isFIFO()).toBe(true);
    await waitFor('the stock refilled', async () => (spares(dir).length >= 1 ? true : undefined));
  });
});

describe('openFifoReader', () => {
  it('leaves the libuv threadpool free while no writer exists', async () => {
    // fs.createReadStream would park one threadpool thread per FIFO in open();
    // with more FIFOs than threads (4) every fs call would then hang.
    const dir = tempDir();
    const readers: FifoReader[] = [];
    for (let i = 0; i < 8; i++) {
      const p = path.join(dir, `f${i}`);
      await createFifo(p);
      const r = await openFifoReader(p);
      r.resume();
      readers.push(r);
    }
    const t0 = performance.now();
    await fs.promises.stat('/etc/hostname');
    await fs.promises.readFile('/etc/hostname');
    expect(performance.now() - t0).toBeLessThan(500);
    for (const r of readers) r.destroy();
  });

  it('reads what writers write and does not end when a writer exits', async () => {
    const p = path.join(tempDir(), 'out');
    await createFifo(p);
    const r = await openFifoReader(p);
    const got = collect(r);
    const w1 = runWriter(`printf 'one\\n'`, openWriteEnd(p));
    expect(await w1.exited).toBe(0);
    await waitFor('first write', () => got.data().toString() === 'one\n', { timeoutMs: 5000, intervalMs: 5 });
    // With only the O_RDWR fd, the writer's exit is not EOF (we are a writer too).
    await sleep(200);
    expect(got.isEnded()).toBe(false);
    const w2 = runWriter(`printf 'two\\n'`, openWriteEnd(p));
    await w2.exited;
    await waitFor('second write', () => got.data().toString() === 'one\ntwo\n', { timeoutMs: 5000, intervalMs: 5 });
    r.destroy();
  });

  it('ends after upgradeToEof once the last writer exits', async () => {
    const p = path.join(tempDir(), 'out');
    await createFifo(p);
    const r = await openFifoReader(p);
    const got = collect(r);
    const w = runWriter(`printf 'a\\n'; sleep 0.2; printf 'b\\n'`, openWriteEnd(p));
    r.upgradeToEof();
    expect(r.eofCapable).toBe(true);
    await got.ended;
    expect(await w.exited).toBe(0);
    expect(got.data().toString()).toBe('a\nb\n');
  });

  it('loses and reorders nothing across the upgrade while data is buffered', async () => {
    const dir = tempDir();
    const p = path.join(dir, 'out');
    await createFifo(p);
    const r = await openFifoReader(p);
    const payload = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + (i >> 10)) & 0xff;
    const src = path.join(dir, 'payload');
    fs.writeFileSync(src, payload);
    // Paused: part of the payload sits in the reader's buffer, part in the
    // pipe, the rest in the blocked writer when the swap happens.
    r.pause();
    const w = runWriter(`cat ${src}`, openWriteEnd(p));
    await waitFor('buffered data', () => r.readableLength > 0, { timeoutMs: 5000, intervalMs: 5 });
    await sleep(50);
    r.upgradeToEof();
    const got = collect(r);
    await got.ended;
    await w.exited;
    expect(got.data().equals(payload)).toBe(true);
  });

  it('rejects a path that is not a FIFO, and a missing one', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, 'x');
    await expect(openFifoReader(file)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(openFifoReader(path.join(dir, 'missing'))).rejects.toBeInstanceOf(NotFoundError);
    expect(openFdsTo(file)).toBe(0);
  });

  it('closes its fds when destroyed, before and after the upgrade', async () => {
    const p = path.join(tempDir(), 'out');
    await createFifo(p);
    const r = await openFifoReader(p);
    expect(openFdsTo(p)).toBe(1);
    const wfd = openWriteEnd(p);
    r.upgradeToEof();
    await sleep(20);
    expect(openFdsTo(p)).toBe(2); // the new O_RDONLY fd and our test writer
    fs.closeSync(wfd);
    await new Promise<void>((resolve) => {
      r.once('close', () => resolve());
      r.destroy();
    });
    expect(openFdsTo(p)).toBe(0);
  });
});

describe('openFifoWriter', () => {
  it('writes to a reader that opens later, and end() is EOF for it', async () => {
    const p = path.join(tempDir(), 'in');
    await createFifo(p);
    const w = await openFifoWriter(p);
    w.write('hello\n');
    const cat = spawn('cat', [p]);
    let out = '';
    cat.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => cat.on('exit', resolve));
    await sleep(100);
    w.end('world\n');
    expect(await exited).toBe(0);
    expect(out).toBe('hello\nworld\n');
  });
});

describe('removeFifos', () => {
  it('removes FIFOs and then the directory only if it is empty', async () => {
    const dir = tempDir();
    const a = path.join(dir, 'io1');
    const b = path.join(dir, 'io2');
    await createFifo(path.join(a, 'x-stdout'));
    await createFifo(path.join(a, 'x-stderr'));
    await createFifo(path.join(b, 'y-stdout'));
    fs.writeFileSync(path.join(b, 'keep.txt'), 'x');
    await removeFifos(a);
    await removeFifos(b);
    expect(fs.existsSync(a)).toBe(false);
    expect(fs.readdirSync(b)).toEqual(['keep.txt']);
    await expect(removeFifos(path.join(dir, 'missing'))).resolves.toBeUndefined();
  });
});

describe('TaskIo', () => {
  it('creates stdin, stdout and stderr FIFOs named after the ID', async () => {
    const dir = tempDir();
    const io = await TaskIo.create({ dir, id: 'c1', stdin: true });
    expect(io.paths).toEqual({
      stdin: path.join(dir, 'c1-stdin'),
      stdout: path.join(dir, 'c1-stdout'),
      stderr: path.join(dir, 'c1-stderr'),
    });
    for (const p of Object.values(io.paths)) expect(fs.statSync(p).isFIFO()).toBe(true);
    expect(io.stdin).toBeInstanceOf(net.Socket);
    expect(io.stderr).toBeInstanceOf(FifoReader);
    await io.close();
  });

  it('uses only stdout with a tty and no stdin unless asked', async () => {
    const dir = tempDir();
    const io = await TaskIo.create({ dir, id: 'e1', tty: true });
    expect(io.paths).toEqual({ stdin: '', stdout: path.join(dir, 'e1-stdout'), stderr: '' });
    expect(io.stdin).toBeNull();
    expect(io.stderr).toBeNull();
    expect(fs.readdirSync(dir)).toEqual(['e1-stdout']);
    await io.close();
  });

  it('carries a process run on its paths end to end, and close() removes FIFOs and fds', async () => {
    const dir = tempDir();
    const io = await TaskIo.create({ dir, id: 'c2', stdin: true });
    const out = collect(io.stdout);
    const err = collect(io.stderr!);
    // Stands in for the shim: opens the three paths, runs the process on them.
    const child = spawn('sh', ['-c', `exec <${io.paths.stdin} >${io.paths.stdout} 2>${io.paths.stderr}; cat; echo bye >&2`]);
    // The shell opens stdin, stdout, stderr in that order; stderr open means all are.
    await waitFor('the child to open its FIFOs', () => fdsOf(child.pid!, io.paths.stderr), { timeoutMs: 5000, intervalMs: 5 });
    io.upgradeToEof();
    io.stdin!.end('through stdin\n');
    await Promise.all([out.ended, err.ended]);
    expect(out.data().toString()).toBe('through stdin\n');
    expect(err.data().toString()).toBe('bye\n');
    await io.close();
    expect(fs.readdirSync(dir)).toEqual([]);
    for (const p of [io.paths.stdin, io.paths.stdout, io.paths.stderr]) expect(openFdsTo(p)).toBe(0);
  });

  it('reattaches to existing FIFOs whose writer is still running, EOF-capable at once', async () => {
    const dir = tempDir();
    await createFifo(path.join(dir, 'r1-stdout'));
    await createFifo(path.join(dir, 'r1-stderr'));
    // The "shim" from before the adapter restarted: its ends are open already.
    // O_RDWR for the setup only, so opening the write ends cannot block.
    const keep = fs.openSync(path.join(dir, 'r1-stdout'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const keep2 = fs.openSync(path.join(dir, 'r1-stderr'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const w = runWriter(
      `sleep 0.5; echo late; echo late-err >&2`,
      openWriteEnd(path.join(dir, 'r1-stdout')),
      openWriteEnd(path.join(dir, 'r1-stderr')),
    );
    fs.closeSync(keep);
    fs.closeSync(keep2);
    const io = await TaskIo.create({ dir, id: 'r1', reattach: true });
    expect(io.stdout.eofCapable).toBe(true);
    const out = collect(io.stdout);
    const err = collect(io.stderr!);
    await Promise.all([out.ended, err.ended, w.exited]);
    expect(out.data().toString()).toBe('late\n');
    expect(err.data().toString()).toBe('late-err\n');
    await io.close();
    await expect(TaskIo.create({ dir, id: 'gone', reattach: true })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('rejects an ID that would escape the directory, and cleans up after a failure', async () => {
    const dir = tempDir();
    await expect(TaskIo.create({ dir, id: '../x' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await createFifo(path.join(dir, 'dup-stderr'));
    await expect(TaskIo.create({ dir, id: 'dup' })).rejects.toBeInstanceOf(AlreadyExistsError);
    expect(fs.readdirSync(dir)).toEqual(['dup-stderr']);
  });
});

function fdsOf(pid: number, target: string): boolean {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}
