import path from 'node:path';
import { FailedPreconditionError } from '../errors';
import { CriLogWriter, TaskIo } from '../io';
import type { LogSource } from '../io/cri-log';
import type { Logger } from '../log/logger';
import type { ContainerIo, TaskStdio } from './context';
import type { ContainerRecord } from './model';

interface Attached {
  io: TaskIo;
  writer?: CriLogWriter;
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
    return path.join(this.stateDir, 'fifo');
  }

  private async attach(record: ContainerRecord, reattach: boolean): Promise<Attached> {
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
    } else {
      // No log file wanted: still drain, or the container blocks on a full pipe.
      for (const s of sources) s.readable.resume();
    }
    const attached = { io, writer };
    this.attached.set(record.id, attached);
    return attached;
  }

  async open(record: ContainerRecord): Promise<TaskStdio> {
    const { io } = await this.attach(record, false);
    return { ...io.paths, terminal: record.config.tty };
  }

  async started(id: string): Promise<void> {
    this.attached.get(id)?.io.upgradeToEof();
  }

  async reattach(record: ContainerRecord): Promise<void> {
    if (this.attached.has(record.id)) return;
    await this.attach(record, true);
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

  async reopen(id: string): Promise<void> {
    const a = this.attached.get(id);
    if (!a?.writer) throw new FailedPreconditionError(`container ${id} is not running or has no log file to reopen`);
    await a.writer.reopen();
  }
}
