import { FailedPreconditionError } from '../errors';
import { CriLogWriter, fifoDirectory, TaskIo } from '../io';
import type { LogSource } from '../io/cri-log-writer';
import type { Logger } from '../log/logger';
import type { AttachedIo, ContainerIo, OutputListener, TaskStdio } from './context';
import type { ContainerRecord } from './model';

interface Attached {
  io: TaskIo;
  writer?: CriLogWriter;
  /** Output listeners when there is no log writer to tap. */
  listeners: Set<OutputListener>;
  ended: Promise<void>;
}

/**
 * Container stdio through FIFOs under the state dir, pumped into the CRI log
 * file. A container whose output outlives its main process (a daemonised
 * grandchild keeps the pipe open) would never reach EOF; finishing waits for
 * the end of output at most `drainTimeoutMs`, then closes anyway.
 */
export class FifoContainerIo implements ContainerIo {
  private readonly attached = new Map<string, Attached>();

  constructor(
    private readonly stateDir: string,
    private readonly logger: Logger,
    private readonly settings: { maxLineBytes: number; maxBytesPerTurn: number; drainTimeoutMs: number },
  ) {}

  private fifoDir(): string {
    return fifoDirectory(this.stateDir);
  }

  private async wire(record: ContainerRecord, reattach: boolean): Promise<Attached> {
    const io = await TaskIo.create({
      dir: this.fifoDir(),
      id: record.id,
      stdin: record.config.stdin,
      tty: record.config.tty,
      reattach,
    });
    const sources: LogSource[] = [{ stream: 'stdout', readable: io.stdout }];
    if (io.stderr) sources.push({ stream: 'stderr', readable: io.stderr });
    let writer: CriLogWriter | undefined;
    if (record.logPath) {
      try {
        writer = await CriLogWriter.open({
          path: record.logPath,
          sources,
          logger: this.logger.child({ containerId: record.id }),
          maxLineBytes: this.settings.maxLineBytes,
          maxBytesPerTurn: this.settings.maxBytesPerTurn,
        });
      } catch (err) {
        await io.close();
        throw err;
      }
    }
    const listeners = new Set<OutputListener>();
    if (!writer) {
      // No log file wanted: still drain, or the container blocks on a full pipe.
      for (const s of sources) {
        s.readable.on('data', (chunk: Buffer) => listeners.forEach((l) => l(s.stream, chunk)));
        s.readable.resume();
      }
    }
    const ended = writer
      ? writer.ended
      : Promise.all(sources.map((s) => new Promise<void>((resolve) => s.readable.once('close', resolve).once('end', resolve)))).then(() => undefined);
    const attached = { io, writer, listeners, ended };
    this.attached.set(record.id, attached);
    return attached;
  }

  async open(record: ContainerRecord): Promise<TaskStdio> {
    const { io } = await this.wire(record, false);
    return { ...io.paths, terminal: record.config.tty };
  }

  async started(id: string): Promise<void> {
    this.attached.get(id)?.io.upgradeToEof();
  }

  async reattach(record: ContainerRecord): Promise<void> {
    if (this.attached.has(record.id)) return;
    await this.wire(record, true);
  }

  async finish(id: string): Promise<void> {
    const a = this.attached.get(id);
    if (!a) return;
    this.attached.delete(id);
    if (a.writer) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.settings.drainTimeoutMs);
      });
      await Promise.race([a.writer.ended, timeout]);
      clearTimeout(timer);
      await a.writer.close();
    }
    await a.io.close();
  }

  attach(id: string): AttachedIo | undefined {
    const a = this.attached.get(id);
    if (!a) return undefined;
    return {
      onOutput: (listener) => {
        if (a.writer) {
          a.writer.on('output', listener);
          return () => a.writer!.off('output', listener);
        }
        a.listeners.add(listener);
        return () => a.listeners.delete(listener);
      },
      stdin: a.io.stdin,
      ended: a.ended,
    };
  }

  async reopen(id: string): Promise<void> {
    const a = this.attached.get(id);
    if (!a?.writer) throw new FailedPreconditionError(`container ${id} is not running or has no log file to reopen`);
    await a.writer.reopen();
  }
}
