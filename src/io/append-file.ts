/**
 * An append-only file with a bounded write queue, for container logs.
 *
 * Not fs.WriteStream because a log must outlive write errors: WriteStream
 * destroys itself on the first failure (ENOSPC, EIO), after which every write
 * throws; containerd instead logs the failure and keeps draining the container
 * so it never blocks on a full pipe. We also need to swap the fd under the
 * queue (log rotation) without ending the stream.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log/logger';
import { InvalidArgumentError, withContext } from '../errors';
import { logMetrics } from '../metrics';

const { O_WRONLY, O_CREAT, O_APPEND, O_NONBLOCK, O_NOCTTY } = fs.constants;

export interface AppendFileOptions {
  path: string;
  /** Applied with fchmod after open, so the umask does not change it. */
  mode: number;
  /** Directory mode when the directory has to be created. */
  dirMode?: number;
  /** Queued bytes above which write() returns false. */
  highWaterMark: number;
  logger: Logger;
  /**
   * Opens the file for appending and returns its fd, at open and at every
   * reopen. Defaults to openRegularFileForAppend; the load tests pass a
   * blocking open so that a FIFO drained slowly can stand in for a slow disk.
   */
  open?: OpenForAppend;
}

export type OpenForAppend = (path: string, mode: number) => Promise<number>;

/**
 * Opens (creating it if needed) a regular file for appending. Non-blocking: a
 * FIFO put where the log goes fails at once (ENXIO) instead of holding a
 * thread-pool thread until someone reads it, and anything but a regular file
 * is then refused.
 */
export function openRegularFileForAppend(p: string, mode: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(p, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_NOCTTY, mode, (err, fd) => {
      if (err) return reject(withContext(err, `opening log file ${p}`));
      fs.fstat(fd, (statErr, st) => {
        if (statErr || !st.isFile()) {
          fs.close(fd, () => undefined);
          return reject(statErr ? withContext(statErr, `checking log file ${p}`) : new InvalidArgumentError(`log file ${p} exists and is not a regular file`));
        }
        fs.fchmod(fd, mode, (chmodErr) => {
          if (chmodErr) {
            fs.close(fd, () => undefined);
            return reject(withContext(chmodErr, `setting the mode of log file ${p}`));
          }
          resolve(fd);
        });
      });
    });
  });
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

interface QueuedWrite {
  bufs: Buffer[];
  size: number;
  /** Called once the bytes are written or dropped, so pooled buffers can be reused. */
  done?: () => void;
}

/** Batches up to this size are appended synchronously (see kick). */
const SYNC_WRITE_MAX = 64 * 1024;

/**
 * When synchronous appends are safe. An append to the page cache takes
 * microseconds, but once the kernel throttles writers (dirty pages over the
 * limit, a disk that cannot keep up) one write(2) can sleep for up to 200 ms,
 * and a synchronous one would stall every CRI call and every other
 * container's log with it. A sync append slower than `slowMs` therefore moves
 * all files to thread-pool writes for `backoffMs`; the disk is shared, so the
 * decision is process-wide.
 */
export class SyncWritePolicy {
  private pausedUntil = 0;
  /** How many times sync appends were switched off; each is one log line. */
  slowEpisodes = 0;

  constructor(
    readonly slowMs = 5,
    readonly backoffMs = 1000,
  ) {}

  allows(nowMs: number): boolean {
    return nowMs >= this.pausedUntil;
  }

  /** Records how long one sync append took; true when that was too long and sync appends are now off. */
  record(elapsedMs: number, nowMs: number): boolean {
    if (elapsedMs <= this.slowMs) return false;
    this.pausedUntil = nowMs + this.backoffMs;
    this.slowEpisodes++;
    return true;
  }
}

const syncWrites = new SyncWritePolicy();

/** Emits 'drain' when the queue falls back under the high-water mark after write() returned false. */
export class AppendFile extends EventEmitter {
  readonly path: string;
  private fd: number;
  private readonly opts: AppendFileOptions;
  private queue: QueuedWrite[] = [];
  /** Queued plus in-flight bytes: what the high-water mark bounds. */
  private pendingBytes = 0;
  private writing = false;
  /** Set while the fd is being swapped: writes queue up but none is issued. */
  private holding = false;
  private closed = false;
  private needDrain = false;
  private idleWaiters: Array<() => void> = [];
  private lastErrorCode: string | undefined;

  bytesWritten = 0;
  writeErrors = 0;
  droppedBytes = 0;

  private constructor(opts: AppendFileOptions, fd: number) {
    super();
    this.opts = opts;
    this.path = opts.path;
    this.fd = fd;
  }

  static async open(opts: AppendFileOptions): Promise<AppendFile> {
    await fs.promises
      .mkdir(path.dirname(opts.path), { recursive: true, mode: opts.dirMode ?? 0o755 })
      .catch((err: unknown) => {
        throw withContext(err, `creating the directory of log file ${opts.path}`);
      });
    return new AppendFile(opts, await (opts.open ?? openRegularFileForAppend)(opts.path, opts.mode));
  }

  get queuedBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Queues `bufs` to be written in order, as one unit. The buffers must stay
   * unchanged until `done` is called. Returns false when the caller should
   * stop producing until 'drain'.
   */
  write(bufs: Buffer | Buffer[], done?: () => void): boolean {
    const list = Array.isArray(bufs) ? bufs : [bufs];
    let size = 0;
    for (const b of list) size += b.length;
    if (this.closed) {
      this.droppedBytes += size;
      logMetrics.dropped(size);
      done?.();
      return true;
    }
    if (size === 0) {
      done?.();
      return this.pendingBytes < this.opts.highWaterMark;
    }
    this.queue.push({ bufs: list, size, done });
    this.pendingBytes += size;
    this.kick();
    const ok = this.pendingBytes < this.opts.highWaterMark;
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** Resolves once everything queued so far (and anything queued meanwhile) is written. */
  async flush(): Promise<void> {
    while (this.writing || this.queue.length > 0) {
      if (this.holding) {
        // Nothing will be written until the swap is done; wait for that first.
        await new Promise<void>((resolve) => this.once('swapped', resolve));
        continue;
      }
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  /**
   * Closes the fd and opens the path again (the kubelet renamed the file to
   * rotate it). Everything queued before the call goes to the old file; on an
   * open failure the old fd stays in use and the error is thrown.
   */
  async reopen(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.holding = true;
    let newFd: number;
    try {
      newFd = await (this.opts.open ?? openRegularFileForAppend)(this.path, this.opts.mode);
    } catch (err) {
      this.holding = false;
      this.emit('swapped');
      this.kick();
      throw err;
    }
    const oldFd = this.fd;
    this.fd = newFd;
    this.holding = false;
    this.emit('swapped');
    this.kick();
    await closeFd(oldFd).catch((err: unknown) =>
      this.opts.logger.warn('closing the rotated log file failed', { path: this.path, error: String(err) }),
    );
  }

  /** Writes what is queued, fdatasyncs, closes. Later writes are dropped and counted. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    const fd = this.fd;
    await new Promise<void>((resolve) =>
      fs.fdatasync(fd, (err) => {
        if (err) this.opts.logger.warn('fdatasync of log file failed', { path: this.path, error: err.message });
        resolve();
      }),
    );
    await closeFd(fd).catch((err: unknown) => {
      throw withContext(err, `closing log file ${this.path}`);
    });
  }

  private kick(): void {
    if (this.writing || this.holding || this.queue.length === 0) return;
    // Everything queued goes out in one writev: while one write is in flight
    // the next batch accumulates, so a busy log costs few syscalls.
    const items = this.queue;
    this.queue = [];
    const bufs: Buffer[] = [];
    let size = 0;
    for (const it of items) {
      for (const b of it.bufs) bufs.push(b);
      size += it.size;
    }
    this.writing = true;
    const start = performance.now();
    if (size <= SYNC_WRITE_MAX && syncWrites.allows(start)) {
      // Small batches are written at once, in the same turn as the read that produced them: bytes
      // read from a container's pipe are gone from it, so an adapter killed between the read and a
      // thread-pool write would lose them (seen in the crash test). A small append to the page
      // cache costs microseconds; large batches still go through the thread pool.
      let err: NodeJS.ErrnoException | null = null;
      let written = 0;
      try {
        written = fs.writevSync(this.fd, bufs);
      } catch (e) {
        err = e as NodeJS.ErrnoException;
      }
      const end = performance.now();
      if (syncWrites.record(end - start, end)) {
        this.opts.logger.warn('a log append blocked; writing container logs from the thread pool for a while', {
          path: this.path,
          blockedMs: Math.round(end - start),
          backoffMs: syncWrites.backoffMs,
        });
      }
      process.nextTick(() => this.afterWrite(items, size, err, written));
      return;
    }
    fs.writev(this.fd, bufs, (err, written) => this.afterWrite(items, size, err, written));
  }

  private afterWrite(items: QueuedWrite[], size: number, err: NodeJS.ErrnoException | null, written: number): void {
    this.writing = false;
    if (err) {
      // Dropping the batch keeps the container draining; a log with a hole
      // beats a container blocked on stdout. One log line per kind of error.
      this.writeErrors++;
      this.droppedBytes += size;
      logMetrics.dropped(size);
      this.pendingBytes -= size;
      for (const it of items) it.done?.();
      if (err.code !== this.lastErrorCode) {
        this.lastErrorCode = err.code;
        this.opts.logger.error('writing container log failed; output is dropped until writes succeed', {
          path: this.path,
          error: err.message,
        });
      }
    } else {
      this.lastErrorCode = undefined;
      this.bytesWritten += written;
      logMetrics.written(written);
      this.pendingBytes -= written;
      let skip = written;
      const rest: QueuedWrite[] = [];
      for (const it of items) {
        if (skip >= it.size) {
          skip -= it.size;
          it.done?.();
          continue;
        }
        // A short write (libuv retries most; a signal or quota edge can still
        // leave one): put the unwritten tail back in front, in order.
        rest.push(skip > 0 ? trimFront(it, skip) : it);
        skip = 0;
      }
      if (rest.length > 0) this.queue = rest.concat(this.queue);
    }
    this.kick();
    if (this.needDrain && this.pendingBytes < this.opts.highWaterMark) {
      this.needDrain = false;
      this.emit('drain');
    }
    if (!this.writing && this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

function trimFront(it: QueuedWrite, n: number): QueuedWrite {
  const bufs: Buffer[] = [];
  let skip = n;
  for (const b of it.bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    bufs.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return { bufs, size: it.size - n, done: it.done };
}
