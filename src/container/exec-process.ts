/**
 * One extra process in a running container (ExecSync, streaming Exec): a
 * fresh exec ID and FIFO set, created and started through containerd, and
 * always cleaned up by dispose(), whatever happened in between.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { CallContext } from '../containerd/call';
import { OCI_PROCESS_TYPE_URL, packJson } from '../containerd/typeurl';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors';
import { fifoDirectory, TaskIo } from '../io';
import type { ContainerContext } from './context';
import type { ContainerRecord } from './model';

export interface ExecOptions {
  cmd: string[];
  /** Run on a terminal: one output stream (stdout), and the size can be changed. */
  tty: boolean;
  /** Give the process a stdin FIFO. */
  stdin: boolean;
}

/** runc could not start the command (missing binary, not executable); the message is runc's. */
export class ExecStartError extends Error {
  constructor(
    message: string,
    readonly notFound: boolean,
  ) {
    super(message);
  }
}

/** The exec's process: the container's own (user, env, cwd, capabilities) with other arguments. */
function processSpec(record: ContainerRecord, opts: ExecOptions): Record<string, unknown> {
  const base = record.spec?.process;
  if (!base) throw new FailedPreconditionError(`container ${record.id} has no stored process spec to exec with`);
  return { ...base, args: opts.cmd, terminal: opts.tty, consoleSize: undefined };
}

/** An upper bound for Wait: the process decides when it ends, the caller's signal when we stop waiting. */
const WAIT_FOREVER_MS = 365 * 24 * 3600 * 1000;

export class ExecProcess {
  private created = false;
  private disposed: Promise<void> | null = null;

  private constructor(
    private readonly ctx: ContainerContext,
    readonly containerId: string,
    readonly execId: string,
    readonly io: TaskIo,
  ) {}

  /**
   * Creates and starts the process. Throws ExecStartError when runc cannot
   * run the command; the FIFOs and the exec are cleaned up on every failure.
   */
  static async start(ctx: ContainerContext, record: ContainerRecord, opts: ExecOptions, call: CallContext): Promise<ExecProcess> {
    if (opts.cmd.length === 0) throw new InvalidArgumentError('cmd must not be empty');
    if (record.state !== 'running') throw new FailedPreconditionError(`container ${record.id} is not running`);
    const execId = `exec-${randomBytes(8).toString('hex')}`;
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const mark = (name: string) => (phases[name] = +(performance.now() - t0).toFixed(1));
    const io = await TaskIo.create({
      dir: fifoDirectory(ctx.config.state),
      id: `${record.id}-${execId}`,
      stdin: opts.stdin,
      tty: opts.tty,
    });
    const proc = new ExecProcess(ctx, record.id, execId, io);
    mark('fifos');
    try {
      await ctx.conn.tasks.exec(
        { containerId: record.id, execId, ...io.paths, terminal: opts.tty, spec: packJson(OCI_PROCESS_TYPE_URL, processSpec(record, opts)) },
        call,
      );
      proc.created = true;
      mark('exec');
      try {
        await ctx.conn.tasks.start({ containerId: record.id, execId }, call);
      } catch (err) {
        const message = (err as Error).message;
        if (call.signal?.aborted) throw err;
        throw new ExecStartError(message, /not found|no such file/i.test(message));
      }
      io.upgradeToEof();
      mark('start');
      ctx.logger.debug('exec started', { containerId: record.id, execId, ...phases });
      return proc;
    } catch (err) {
      await proc.dispose();
      throw err;
    }
  }

  /** Resolves with the exit status; rejects if `signal` aborts first. */
  async wait(signal?: AbortSignal): Promise<number> {
    const r = await this.ctx.conn.tasks.wait(
      { containerId: this.containerId, execId: this.execId },
      { deadline: Date.now() + WAIT_FOREVER_MS, signal },
    );
    return r.exitStatus;
  }

  kill(signal = 9): Promise<void> {
    return this.ctx.conn.tasks
      .kill({ containerId: this.containerId, execId: this.execId, signal, all: false })
      .then(() => undefined)
      .catch(() => undefined);
  }

  async resize(width: number, height: number): Promise<void> {
    await this.ctx.conn.tasks.resizePty({ containerId: this.containerId, execId: this.execId, width, height });
  }

  /** Tells the shim to close the process's stdin (our FIFO end closing alone does not). */
  async closeStdin(): Promise<void> {
    this.io.stdin?.end();
    await this.ctx.conn.tasks.closeIo({ containerId: this.containerId, execId: this.execId, stdin: true }).catch(() => undefined);
  }

  /** Closes the FIFOs and deletes the exec, killing it first if it still runs. Idempotent. */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      await this.io.close();
      if (!this.created) return;
      const { containerId, execId } = this;
      await this.ctx.conn.tasks.deleteProcess({ containerId, execId }).catch(async (err: unknown) => {
        if (err instanceof NotFoundError) return;
        await this.kill();
        await this.ctx.conn.tasks.wait({ containerId, execId }, { deadline: Date.now() + 5000 }).catch(() => undefined);
        await this.ctx.conn.tasks.deleteProcess({ containerId, execId }).catch(() => undefined);
      });
    })();
    return this.disposed;
  }
}
