/**
 * FIFOs between the adapter and containerd's shim.
 *
 * Two rules shape this file (measured, see /work/shared/field-notes.md):
 * - A FIFO must never be opened or read through the fs stream API: a blocking
 *   open() of a FIFO without a writer parks a libuv threadpool thread, and four
 *   of those freeze every fs call in the process. Every open here is
 *   O_NONBLOCK, and the fds are driven by net.Socket (epoll on the event loop).
 * - A reader opened O_RDWR is itself a writer, so it never sees EOF. That is
 *   what lets us open before the shim does; once the shim holds its end we swap
 *   to an O_RDONLY fd so the container's exit shows up as EOF.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  withContext,
} from '../errors';

const { O_RDWR, O_RDONLY, O_NONBLOCK } = fs.constants;

/** Bigger than the default 16 KiB so one full pipe read (64 KiB) fits without an extra pause/resume. */
const READER_HIGH_WATER_MARK = 64 * 1024;

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as NodeJS.ErrnoException).code : undefined;
}

/** A missing path is the caller's NotFound, anything else keeps withContext's mapping. */
function fsError(err: unknown, context: string): Error {
  if (errnoCode(err) === 'ENOENT') return new NotFoundError(`${context}: no such file`, { cause: err });
  return withContext(err, context);
}

/** Creates a FIFO with mode 0600; the parent directory (0700) is created when missing. */
export function createFifo(fifoPath: string): Promise<void> {
  return createFifos([fifoPath]);
}

/**
 * A long-lived shell that runs mkfifo for us. Node has no mkfifo, and
 * starting a process from Node blocks its event loop while it forks (about
 * 9 ms here, for every CRI call and container log at once); the shell is a
 * small process, so its fork for mkfifo is cheap and happens outside the
 * daemon. Requests are answered in order, one line each.
 */
const MKFIFO_LOOP =
  'while IFS= read -r n; do set --; i=0; ' +
  'while [ "$i" -lt "$n" ]; do IFS= read -r p; set -- "$@" "$p"; i=$((i+1)); done; ' +
  'if mkfifo -m 600 -- "$@" 2>/dev/null; then echo ok; else echo fail; fi; done';

class MkfifoShell {
  private child: ChildProcess | null = null;
  private readonly waiting: Array<(ok: boolean) => void> = [];
  private output = '';

  /** True when the FIFOs were made; false when the shell could not (the caller finds out why). */
  run(paths: readonly string[]): Promise<boolean> {
    if (paths.some((p) => p.includes('\n'))) return Promise.resolve(false);
    const child = this.shell();
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      child.stdin!.write(`${paths.length}\n${paths.join('\n')}\n`);
    });
  }

  private shell(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn('sh', ['-c', MKFIFO_LOOP], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.stdin!.on('error', () => undefined);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => {
      this.output += text;
      for (let nl = this.output.indexOf('\n'); nl >= 0; nl = this.output.indexOf('\n')) {
        const line = this.output.slice(0, nl);
        this.output = this.output.slice(nl + 1);
        this.waiting.shift()?.(line === 'ok');
      }
    });
    const gone = () => {
      if (this.child === child) this.child = null;
      this.output = '';
      for (const w of this.waiting.splice(0)) w(false);
    };
    child.on('error', gone);
    child.on('exit', gone);
    // The shell must not keep the daemon (or a test run) alive on its own.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    this.child = child;
    return child;
  }
}

const mkfifoShell = new MkfifoShell();

/** Name prefix of FIFOs made ahead (SpareFifos); nothing else in a FIFO directory starts with it. */
export const SPARE_FIFO_PREFIX = '.spare-';
/** Spares kept per directory: an exec's or a container's two or three, twice over. */
const SPARES_PER_DIR = 4;

/**
 * FIFOs made ahead in the directories the daemon names (keepSpareFifos), so
 * that creating one there is a rename (a syscall) instead of a round trip
 * through the mkfifo shell and its fork (3 ms of every ExecSync and
 * CreateContainer). Taken ones are made again in the background, several
 * per shell request. Spares a stopped daemon left are removed before a
 * directory's first refill; a spare that vanished meanwhile (its directory
 * was cleaned) only means that FIFO is made the slow way.
 */
class SpareFifos {
  private readonly dirs = new Map<string, { spares: string[]; refilling: boolean; swept: boolean }>();

  keepIn(dir: string): void {
    if (!this.dirs.has(dir)) this.dirs.set(dir, { spares: [], refilling: false, swept: false });
    this.refill(dir);
  }

  take(dir: string): string | undefined {
    return this.dirs.get(dir)?.spares.pop();
  }

  /** Tops a kept directory up to SPARES_PER_DIR without holding the caller. */
  refill(dir: string): void {
    const state = this.dirs.get(dir);
    if (!state || state.refilling || state.spares.length >= SPARES_PER_DIR) return;
    state.refilling = true;
    const s = state;
    void (async () => {
      if (!s.swept) {
        const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
        await Promise.all(names.filter((n) => n.startsWith(SPARE_FIFO_PREFIX)).map((n) => unlinkIfPresent(path.join(dir, n)).catch(() => undefined)));
        s.swept = true;
      }
      const made = Array.from({ length: SPARES_PER_DIR - s.spares.length }, () => path.join(dir, `${SPARE_FIFO_PREFIX}${randomBytes(8).toString('hex')}`));
      if (made.length && (await mkfifoShell.run(made))) s.spares.push(...made);
    })()
      .catch(() => undefined)
      .finally(() => (s.refilling = false));
  }
}

const spareFifos = new SpareFifos();

/** The daemon's one directory of task FIFOs (containers' and execs'), under its state directory. */
export function fifoDirectory(stateDir: string): string {
  return path.join(stateDir, 'fifo');
}

/** From now on, FIFOs created directly in `dir` (made here if missing) are taken from spares made ahead. */
export async function keepSpareFifos(dir: string): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  spareFifos.keepIn(path.resolve(dir));
}

/**
 * Creates several FIFOs at once (mode 0600, whatever the umask): from the
 * directory's spares when it keeps some, else through the long-lived shell;
 * if that fails, with a mkfifo process of our own, whose error says why. On
 * failure none of them is left behind.
 */
export async function createFifos(fifoPaths: readonly string[]): Promise<void> {
  if (fifoPaths.length === 0) return;
  const dirs = new Set(fifoPaths.map((p) => path.dirname(path.resolve(p))));
  for (const dir of dirs) {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  }
  const existing = fifoPaths.filter((p) => fs.existsSync(p));
  if (existing.length) throw new AlreadyExistsError(`cannot create FIFO ${existing[0]}: the path already exists`);
  const rest: string[] = [];
  for (const p of fifoPaths) {
    const spare = spareFifos.take(path.dirname(path.resolve(p)));
    if (spare && (await fs.promises.rename(spare, p).then(() => true, () => false))) continue;
    rest.push(p);
  }
  for (const dir of dirs) spareFifos.refill(dir);
  if (rest.length === 0) return;
  if (await mkfifoShell.run(rest)) return;
  for (const p of fifoPaths) fs.rmSync(p, { force: true });
  await new Promise<void>((resolve, reject) => {
    // mkfifo -m sets the mode after creation, so the umask cannot widen or narrow it.
    execFile('mkfifo', ['-m', '600', '--', ...fifoPaths], (err, _stdout, stderr) => {
      if (!err) return resolve();
      for (const p of fifoPaths) fs.rmSync(p, { force: true });
      if (errnoCode(err) === 'ENOENT') {
        reject(new UnavailableError('the mkfifo command was not found in PATH; install coreutils', { cause: err }));
        return;
      }
      const detail = String(stderr).trim() || err.message;
      reject(new InternalError(`mkfifo ${fifoPaths.join(' ')}: ${detail}`, { cause: err }));
    });
  });
}

function openNonBlocking(fifoPath: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(fifoPath, flags | O_NONBLOCK, (err, fd) => {
      if (err) {
        reject(fsError(err, `opening FIFO ${fifoPath}`));
        return;
      }
      // net.Socket would reject a regular file only with a generic error; say what is wrong.
      fs.fstat(fd, (statErr, st) => {
        if (statErr || !st.isFIFO()) {
          fs.close(fd, () => undefined);
          reject(
            statErr
              ? withContext(statErr, `inspecting ${fifoPath}`)
              : new InvalidArgumentError(`${fifoPath} is not a FIFO`),
          );
          return;
        }
        resolve(fd);
      });
    });
  });
}

/**
 * The read side of a FIFO as a Readable. Starts on an O_RDWR fd (never EOF,
 * never blocks on open); `upgradeToEof()` moves it to an O_RDONLY fd.
 */
export class FifoReader extends Readable {
  readonly path: string;
  private inner: net.Socket;
  private innerPaused = false;
  private upgraded = false;

  constructor(fifoPath: string, rdwrFd: number) {
    super({ highWaterMark: READER_HIGH_WATER_MARK });
    this.path = fifoPath;
    this.inner = this.attach(rdwrFd);
  }

  /** True once reading from the O_RDONLY fd, i.e. once EOF can arrive. */
  get eofCapable(): boolean {
    return this.upgraded;
  }

  /**
   * Swaps to an O_RDONLY fd so the last writer's close becomes EOF. Call it only
   * after the writer (the shim) has opened its end: with no writer at all, an
   * O_RDONLY FIFO reads EOF at once. Idempotent.
   */
  upgradeToEof(): void {
    if (this.upgraded || this.destroyed) return;
    // Synchronous on purpose: an O_NONBLOCK open of a FIFO returns immediately,
    // and doing the swap in one tick means libuv cannot read from the old fd
    // after we have drained it, so no byte is lost or reordered.
    let fd: number;
    try {
      fd = fs.openSync(this.path, O_RDONLY | O_NONBLOCK);
    } catch (err) {
      throw fsError(err, `reopening FIFO ${this.path} read-only`);
    }
    const old = this.inner;
    old.removeAllListeners('data');
    old.removeAllListeners('end');
    old.pause();
    // Whatever the old socket already pulled out of the kernel is ahead of
    // anything the new fd will read; hand it on first.
    let pushed = true;
    for (let chunk: Buffer | null = old.read(); chunk !== null; chunk = old.read()) {
      pushed = this.push(chunk) && pushed;
    }
    if (!pushed) this.innerPaused = true;
    old.on('error', () => undefined);
    old.destroy();
    this.upgraded = true;
    this.inner = this.attach(fd);
  }

  override _read(): void {
    if (this.innerPaused) {
      this.innerPaused = false;
      this.inner.resume();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Report 'close' only once the fd is really closed, so a caller that
    // awaits it can unlink the FIFO or count fds without a race.
    const inner = this.inner;
    if (inner.closed) {
      callback(err);
      return;
    }
    inner.once('close', () => callback(err));
    inner.destroy();
  }

  private attach(fd: number): net.Socket {
    const sock = new net.Socket({ fd, readable: true, writable: false });
    if (this.innerPaused) sock.pause();
    sock.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) {
        this.innerPaused = true;
        sock.pause();
      }
    });
    sock.on('end', () => {
      if (sock === this.inner) this.push(null);
    });
    sock.on('error', (err) => {
      if (sock === this.inner) this.destroy(withContext(err, `reading FIFO ${this.path}`));
    });
    return sock;
  }
}

/** Opens a FIFO for reading without blocking, whether or not a writer exists yet. */
export async function openFifoReader(fifoPath: string): Promise<FifoReader> {
  const fd = await openNonBlocking(fifoPath, O_RDWR);
  try {
    return new FifoReader(fifoPath, fd);
  } catch (err) {
    fs.close(fd, () => undefined);
    throw withContext(err, `wrapping FIFO ${fifoPath}`);
  }
}

/**
 * Opens a FIFO for writing (a container's stdin). O_RDWR because an O_WRONLY
 * non-blocking open fails with ENXIO until the shim opens its read end. Our fd
 * keeps the pipe alive, so writes made before the shim opens are buffered by
 * the kernel (64 KiB) and then by the socket; end() or destroy() closes the fd,
 * which is the EOF the container sees once the shim's own copy is closed.
 */
export async function openFifoWriter(fifoPath: string): Promise<net.Socket> {
  const fd = await openNonBlocking(fifoPath, O_RDWR);
  try {
    return new net.Socket({ fd, readable: false, writable: true });
  } catch (err) {
    fs.close(fd, () => undefined);
    throw withContext(err, `wrapping FIFO ${fifoPath}`);
  }
}

/**
 * Removes the FIFOs directly in `dir` and then `dir` itself if that left it
 * empty. Other files are left alone: the directory may be shared. A missing
 * directory is not an error (cleanup after a crash runs this blindly).
 */
export async function removeFifos(dir: string): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw withContext(err, `listing FIFO directory ${dir}`);
  }
  await Promise.all(
    entries
      .filter((e) => e.isFIFO())
      .map((e) => unlinkIfPresent(path.join(dir, e.name))),
  );
  try {
    await fs.promises.rmdir(dir);
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT') {
      throw withContext(err, `removing FIFO directory ${dir}`);
    }
  }
}

export async function unlinkIfPresent(p: string): Promise<void> {
  try {
    await fs.promises.unlink(p);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw withContext(err, `removing ${p}`);
  }
}

/** Throws unless `p` is an existing FIFO; used when reattaching to a running task. */
export async function assertFifo(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(p);
  } catch (err) {
    throw fsError(err, `FIFO ${p}`);
  }
  if (!st.isFIFO()) throw new FailedPreconditionError(`${p} exists but is not a FIFO`);
}
