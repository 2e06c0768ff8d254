/**
 * The FIFO set for one containerd process (a container's init process or an
 * exec). containerd's Tasks.Create / Tasks.Exec take the three paths as
 * strings; the shim opens them, so we must have our ends open first.
 */
import type * as net from 'node:net';
import * as path from 'node:path';
import { InvalidArgumentError, withContext } from '../errors';
import { assertFifo, createFifos, FifoReader, openFifoReader, openFifoWriter, unlinkIfPresent } from './fifo';

export interface TaskIoOptions {
  /** Directory for the FIFOs; created (0700) if missing. */
  dir: string;
  /** Container or exec ID; names the FIFOs `<id>-stdin`, `<id>-stdout`, `<id>-stderr`. */
  id: string;
  /** Create a stdin FIFO (the CRI's `stdin` flag). */
  stdin?: boolean;
  /** With a terminal the shim copies the console to stdout only, so there is no stderr FIFO. */
  tty?: boolean;
  /**
   * Open FIFOs that already exist instead of creating them: the adapter
   * restarted while the task kept running. The shim still holds its ends, so
   * the readers are upgraded to EOF-capable at once.
   */
  reattach?: boolean;
}

/** What containerd takes as stdin/stdout/stderr; '' for a stream not in use, as containerd's cio does. */
export interface TaskIoPaths {
  stdin: string;
  stdout: string;
  stderr: string;
}

export class TaskIo {
  private closed = false;

  private constructor(
    readonly paths: TaskIoPaths,
    readonly stdin: net.Socket | null,
    readonly stdout: FifoReader,
    readonly stderr: FifoReader | null,
  ) {}

  static async create(opts: TaskIoOptions): Promise<TaskIo> {
    if (!opts.id || opts.id.includes('/') || opts.id === '.' || opts.id === '..') {
      throw new InvalidArgumentError(`invalid ID ${JSON.stringify(opts.id)} for FIFO names`);
    }
    const base = path.join(opts.dir, opts.id);
    const paths: TaskIoPaths = {
      stdin: opts.stdin ? `${base}-stdin` : '',
      stdout: `${base}-stdout`,
      stderr: opts.tty ? '' : `${base}-stderr`,
    };
    const wanted = [paths.stdin, paths.stdout, paths.stderr].filter((p) => p !== '');
    const created: string[] = [];
    const opened: Array<{ destroy(): unknown }> = [];
    try {
      if (opts.reattach) {
        for (const p of wanted) await assertFifo(p);
      } else {
        await createFifos(wanted);
        created.push(...wanted);
      }
      const stdin = paths.stdin ? await openFifoWriter(paths.stdin) : null;
      if (stdin) opened.push(stdin);
      const stdout = await openFifoReader(paths.stdout);
      opened.push(stdout);
      const stderr = paths.stderr ? await openFifoReader(paths.stderr) : null;
      if (stderr) opened.push(stderr);
      const io = new TaskIo(paths, stdin, stdout, stderr);
      if (opts.reattach) io.upgradeToEof();
      return io;
    } catch (err) {
      for (const s of opened) s.destroy();
      await Promise.all(created.map((p) => unlinkIfPresent(p).catch(() => undefined)));
      throw withContext(err, `setting up the FIFOs of ${opts.id}`);
    }
  }

  /** See FifoReader.upgradeToEof: call once the shim has opened its ends (task Create, exec Start). */
  upgradeToEof(): void {
    this.stdout.upgradeToEof();
    this.stderr?.upgradeToEof();
  }

  /** Closes our fds (pending stdin bytes are dropped) and removes the FIFOs. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const streams = [this.stdin, this.stdout, this.stderr].filter((s): s is net.Socket | FifoReader => s !== null);
    await Promise.all(streams.map(destroyAndWait));
    const paths = [this.paths.stdin, this.paths.stdout, this.paths.stderr].filter((p) => p !== '');
    await Promise.all(paths.map((p) => unlinkIfPresent(p)));
  }
}

/** Resolves once the stream's fd is closed, not merely scheduled to close. */
function destroyAndWait(stream: net.Socket | FifoReader): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    stream.once('close', () => resolve());
    stream.destroy();
  });
}
