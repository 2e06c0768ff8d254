/**
 * The CRI container log writer: container stdout/stderr in, the kubelet's log
 * file format out, one record a line:
 *
 *   <RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n
 *
 * Compatibility target is containerd 1.6's CRI plugin (pkg/cri/io/logger.go),
 * whose files the kubelet already parses:
 * - lines split on 0x0a only, bytes never re-encoded;
 * - a trailing "\r\n" is dropped along with the "\n" (content excludes both),
 *   a "\r" anywhere else is content;
 * - content longer than maxLineBytes goes out as P records of exactly
 *   maxLineBytes bytes, the line's remainder as the F record;
 * - output without a final newline at EOF becomes one P record.
 * One deliberate difference: containerd holds an unterminated line until a
 * newline or EOF arrives, so a prompt ("Password: ") never shows in
 * `kubectl logs -f`. We flush it as a P record after partialFlushMs.
 */
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { Logger } from '../log/logger';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import { AppendFile, type OpenForAppend } from './append-file';
import { CriClock } from './cri-log-clock';
import { RecordBatch, StreamName } from './cri-log-records';
import { currentTurn } from './event-loop-turn';

export type { StreamName };

export interface LogSource {
  stream: StreamName;
  readable: Readable;
}

export interface CriLogWriterOptions {
  /** The log file; created 0640 with its directory if missing, appended to if present. */
  path: string;
  sources: readonly LogSource[];
  logger: Logger;
  /** containerd's max_container_log_line_size default. */
  maxLineBytes?: number;
  /**
   * How long an unterminated line may wait for its newline before it is
   * written as a P record. 100 ms is below what a person watching
   * `kubectl logs -f` notices, yet long enough that a program writing one line
   * in several write() calls (unbuffered stdio, printf of fields) nearly always
   * finishes the line first, so lines are not needlessly fragmented. 0 disables
   * the timer (containerd's behaviour).
   */
  partialFlushMs?: number;
  /** Bytes queued for the file before the sources are paused. */
  highWaterMark?: number;
  /**
   * Bytes of container output this writer formats and appends in one
   * event-loop turn before it pauses its sources until the next turn. Without
   * a limit a container that always has output ready is served as long as
   * libuv keeps reading its pipe (measured: 256 KiB and ~30 ms in one turn),
   * and every other container's lines, and every CRI call, wait behind it.
   * With it, one busy container delays another's log by at most the time it
   * takes to process this many bytes, per turn.
   */
  maxBytesPerTurn?: number;
  /** How the log file is opened (see AppendFileOptions.open). */
  open?: OpenForAppend;
}

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;
export const DEFAULT_PARTIAL_FLUSH_MS = 100;
export const DEFAULT_MAX_BYTES_PER_TURN = 64 * 1024;
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const LOG_FILE_MODE = 0o640;
const LF = 0x0a;
const CR = 0x0d;

/** Removes and returns the first n bytes of `list` (whose total is at least n). */
function takeBytes(list: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let need = n;
  while (need > 0) {
    const b = list[0]!;
    if (b.length <= need) {
      out.push(b);
      list.shift();
      need -= b.length;
    } else {
      out.push(b.subarray(0, need));
      list[0] = b.subarray(need);
      need = 0;
    }
  }
  return out;
}

function lastByte(list: readonly Buffer[]): number {
  const b = list[list.length - 1];
  return b && b.length > 0 ? b[b.length - 1]! : -1;
}

/** Drops the last byte of `list`. */
function dropLastByte(list: Buffer[]): void {
  const b = list[list.length - 1]!;
  if (b.length === 1) list.pop();
  else list[list.length - 1] = b.subarray(0, b.length - 1);
}

interface SourceState {
  stream: StreamName;
  readable: Readable;
  /** The unterminated tail of the current line (non-empty pieces), at most maxLineBytes+1 bytes. */
  pending: Buffer[];
  pendingLen: number;
  /** performance.now() when `pending` became non-empty. */
  pendingSinceMs: number;
  timer: NodeJS.Timeout | null;
  ended: boolean;
  onData: (chunk: Buffer | string) => void;
  onEnd: () => void;
  onError: (err: Error) => void;
}

/**
 * Why the sources are paused: the file is behind, the fd is being swapped,
 * the writer is closed, or the writer has had its share of this turn.
 */
type HoldReason = 'backpressure' | 'reopen' | 'closed' | 'turn';

export interface CriLogStats {
  bytesRead: number;
  bytesWritten: number;
  linesWritten: number;
  /** How many times the sources were paused because the file fell behind. */
  backpressurePauses: number;
  /** How many times the writer paused for the next event-loop turn after using its maxBytesPerTurn. */
  turnYields: number;
  writeErrors: number;
  droppedBytes: number;
  /** Formatted bytes waiting for the file right now: what back-pressure bounds. */
  queuedBytes: number;
}

/**
 * Writes the sources to a CRI log file until they end. Emits 'sourcesEnded'
 * once every source has ended and its last records are in the file; the
 * `ended` promise resolves at the same moment (or on close()). Emits
 * 'output' (stream, chunk) for every piece of output as it is taken in, for
 * attached clients.
 */
export class CriLogWriter extends EventEmitter {
  readonly path: string;
  readonly ended: Promise<void>;
  private readonly file: AppendFile;
  private readonly logger: Logger;
  private readonly maxLineBytes: number;
  private readonly partialFlushMs: number;
  private readonly maxBytesPerTurn: number;
  private turn = -1;
  private turnBytes = 0;
  private turnYields = 0;
  private readonly clock = new CriClock();
  private readonly sources: SourceState[];
  private readonly holds = new Set<HoldReason>();
  private resolveEnded!: () => void;
  private endedSettled = false;
  private reopenChain: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private bytesRead = 0;
  private records = 0;
  private pauses = 0;

  private constructor(opts: CriLogWriterOptions, file: AppendFile) {
    super();
    this.path = opts.path;
    this.file = file;
    this.logger = opts.logger;
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.partialFlushMs = opts.partialFlushMs ?? DEFAULT_PARTIAL_FLUSH_MS;
    this.maxBytesPerTurn = opts.maxBytesPerTurn ?? DEFAULT_MAX_BYTES_PER_TURN;
    this.ended = new Promise<void>((resolve) => (this.resolveEnded = resolve));
    this.file.on('drain', () => this.release('backpressure'));
    this.sources = opts.sources.map((s) => this.attach(s));
    if (this.sources.length === 0) void this.checkAllEnded();
  }

  static async open(opts: CriLogWriterOptions): Promise<CriLogWriter> {
    if (opts.maxLineBytes !== undefined && !(Number.isInteger(opts.maxLineBytes) && opts.maxLineBytes > 0)) {
      throw new InvalidArgumentError(`maxLineBytes must be a positive integer, not ${opts.maxLineBytes}`);
    }
    if (opts.maxBytesPerTurn !== undefined && !(Number.isInteger(opts.maxBytesPerTurn) && opts.maxBytesPerTurn > 0)) {
      throw new InvalidArgumentError(`maxBytesPerTurn must be a positive integer, not ${opts.maxBytesPerTurn}`);
    }
    if (opts.partialFlushMs !== undefined && !(opts.partialFlushMs >= 0)) {
      throw new InvalidArgumentError(`partialFlushMs must be >= 0, not ${opts.partialFlushMs}`);
    }
    const names = opts.sources.map((s) => s.stream);
    if (new Set(names).size !== names.length) {
      throw new InvalidArgumentError(`each stream may have one source, got ${names.join(', ')}`);
    }
    const file = await AppendFile.open({
      path: opts.path,
      mode: LOG_FILE_MODE,
      highWaterMark: opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      logger: opts.logger,
      open: opts.open,
    });
    return new CriLogWriter(opts, file);
  }

  /** Bytes of CRI records the kernel accepted into the file (this one and any rotated before). */
  get bytesWritten(): number {
    return this.file.bytesWritten;
  }

  /**
   * CRI records (F and P) formatted and queued for the file; the same as
   * what the file holds once `ended` or close() has resolved, barring write
   * errors (see stats.writeErrors).
   */
  get linesWritten(): number {
    return this.records;
  }

  get stats(): CriLogStats {
    return {
      bytesRead: this.bytesRead,
      bytesWritten: this.file.bytesWritten,
      linesWritten: this.records,
      backpressurePauses: this.pauses,
      turnYields: this.turnYields,
      writeErrors: this.file.writeErrors,
      droppedBytes: this.file.droppedBytes,
      queuedBytes: this.file.queuedBytes,
    };
  }

  /** True once every source has ended. */
  get sourcesEnded(): boolean {
    return this.sources.every((s) => s.ended);
  }

  /**
   * Reopens the file at the same path after the kubelet renamed it. Intake
   * is paused, everything already formatted goes to the old file, then the
   * new file takes over. A line still being assembled is not split by this:
   * it lands whole in the new file.
   */
  reopen(): Promise<void> {
    const run = this.reopenChain.then(async () => {
      if (this.closing) throw new FailedPreconditionError(`log writer for ${this.path} is closed`);
      this.hold('reopen');
      try {
        await this.file.reopen();
        this.clock.rebase();
      } finally {
        this.release('reopen');
      }
    });
    this.reopenChain = run.catch(() => undefined);
    return run;
  }

  /**
   * Stops reading (the sources are left paused, not destroyed: their owner
   * closes them), writes any unterminated line as a P record, and resolves
   * once the file is fdatasync'ed and closed.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.reopenChain;
      this.hold('closed');
      for (const s of this.sources) {
        this.detach(s);
        this.flushPartial(s, true);
      }
      await this.file.close();
      this.settleEnded();
    })();
    return this.closing;
  }

  private attach(src: LogSource): SourceState {
    const state: SourceState = {
      stream: src.stream,
      readable: src.readable,
      pending: [],
      pendingLen: 0,
      pendingSinceMs: 0,
      timer: null,
      ended: false,
      // Sources should carry Buffers; one with setEncoding() has already lost
      // invalid bytes, so its strings are written back as UTF-8 as-is.
      onData: (chunk: Buffer | string) =>
        this.onData(state, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk),
      onEnd: () => this.onSourceEnd(state),
      onError: (err) => {
        this.logger.warn('container output stream failed; treating it as ended', {
          path: this.path,
          stream: state.stream,
          error: err.message,
        });
        this.onSourceEnd(state);
      },
    };
    src.readable.on('data', state.onData);
    src.readable.on('end', state.onEnd);
    // A destroyed stream closes without 'end'; its output is as complete as it will get.
    src.readable.on('close', state.onEnd);
    src.readable.on('error', state.onError);
    // 'end' and 'close' fire once; a source that is already done would never report.
    if (src.readable.readableEnded || src.readable.destroyed) queueMicrotask(state.onEnd);
    return state;
  }

  private detach(s: SourceState): void {
    s.readable.off('data', s.onData);
    s.readable.off('end', s.onEnd);
    s.readable.off('close', s.onEnd);
    s.readable.off('error', s.onError);
    // Keep a no-op error listener: an unhandled 'error' on a source we let go of would crash the daemon.
    s.readable.on('error', () => undefined);
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
  }

  /**
   * Takes a chunk within this turn's budget. What does not fit is put back at
   * the front of its source, which is paused (with the others) until the next
   * turn, so order is kept and nothing is copied.
   */
  private onData(s: SourceState, chunk: Buffer): void {
    if (s.ended || this.holds.has('closed')) return;
    const turn = currentTurn();
    if (turn !== this.turn) {
      this.turn = turn;
      this.turnBytes = 0;
    }
    const room = Math.max(0, this.maxBytesPerTurn - this.turnBytes);
    if (chunk.length >= room) {
      this.yieldTurn();
      if (chunk.length > room) {
        s.readable.unshift(chunk.subarray(room));
        chunk = chunk.subarray(0, room);
      }
    }
    if (chunk.length === 0) return;
    this.turnBytes += chunk.length;
    this.format(s, chunk);
  }

  private yieldTurn(): void {
    if (this.holds.has('turn')) return;
    this.turnYields++;
    this.hold('turn');
    setImmediate(() => this.release('turn'));
  }

  private format(s: SourceState, chunk: Buffer): void {
    this.bytesRead += chunk.length;
    // Attached clients see exactly the bytes the log gets, in the same order.
    if (this.listenerCount('output') > 0) this.emit('output', s.stream, chunk);
    const max = this.maxLineBytes;
    const batch = new RecordBatch(this.clock, s.stream);
    let pos = 0;
    if (s.pendingLen > 0) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) {
        this.appendPending(s, batch, chunk);
        this.commit(batch);
        return;
      }
      if (nl > 0) s.pending.push(chunk.subarray(0, nl));
      s.pendingLen += nl;
      this.addPendingLine(batch, s);
      pos = nl + 1;
    }
    const len = chunk.length;
    while (pos < len) {
      const nl = chunk.indexOf(LF, pos);
      if (nl === -1) break;
      this.addLine(batch, chunk, pos, nl, max);
      pos = nl + 1;
    }
    if (pos < len) this.appendPending(s, batch, chunk.subarray(pos));
    this.commit(batch);
  }

  /** One terminated line (without its "\n") as P* F records. */
  private addLine(batch: RecordBatch, buf: Buffer, start: number, end: number, max: number): void {
    if (end > start && buf[end - 1] === CR) end--;
    while (end - start > max) {
      batch.add('P', buf, start, start + max);
      start += max;
    }
    batch.add('F', buf, start, end);
  }

  /** The same for a line that was assembled in `pending`. */
  private addPendingLine(batch: RecordBatch, s: SourceState): void {
    const list = s.pending;
    let len = s.pendingLen;
    s.pending = [];
    s.pendingLen = 0;
    if (lastByte(list) === CR) {
      dropLastByte(list);
      len--;
    }
    while (len > this.maxLineBytes) {
      batch.addList('P', takeBytes(list, this.maxLineBytes));
      len -= this.maxLineBytes;
    }
    batch.addList('F', list);
  }

  private appendPending(s: SourceState, batch: RecordBatch, tail: Buffer): void {
    if (s.pendingLen === 0) s.pendingSinceMs = performance.now();
    s.pending.push(tail);
    s.pendingLen += tail.length;
    // Split only when the content is known to exceed the limit: a trailing
    // "\r" may still turn out to be half of the line's "\r\n".
    const max = this.maxLineBytes;
    while (s.pendingLen - (lastByte(s.pending) === CR ? 1 : 0) > max) {
      batch.addList('P', takeBytes(s.pending, max));
      s.pendingLen -= max;
    }
    this.armTimer(s);
  }

  private armTimer(s: SourceState, delay = this.partialFlushMs): void {
    if (this.partialFlushMs <= 0 || s.timer || s.pendingLen === 0) return;
    s.timer = setTimeout(() => this.onTimer(s), delay);
    s.timer.unref();
  }

  private onTimer(s: SourceState): void {
    s.timer = null;
    if (s.pendingLen === 0 || s.ended || this.holds.has('closed')) return;
    if (this.holds.has('backpressure')) {
      // More of this line is probably waiting in the pipe; flushing now would
      // fragment it for no reader's benefit.
      this.armTimer(s);
      return;
    }
    const waited = performance.now() - s.pendingSinceMs;
    if (waited < this.partialFlushMs) {
      this.armTimer(s, this.partialFlushMs - waited);
      return;
    }
    this.flushPartial(s, false);
  }

  /**
   * Writes the unterminated line as a P record. Until the end of the stream a
   * trailing "\r" is held back, since the next byte may make it part of a
   * "\r\n" that must not show up in the content.
   */
  private flushPartial(s: SourceState, final: boolean): void {
    if (s.pendingLen === 0) return;
    const keepCr = !final && lastByte(s.pending) === CR;
    const n = keepCr ? s.pendingLen - 1 : s.pendingLen;
    if (n === 0) return;
    const batch = new RecordBatch(this.clock, s.stream);
    batch.addList('P', takeBytes(s.pending, n));
    s.pendingLen -= n;
    if (s.pendingLen > 0) s.pendingSinceMs = performance.now();
    this.commit(batch);
  }

  private commit(batch: RecordBatch): void {
    if (batch.records === 0) return;
    this.records += batch.records;
    const { parts, release } = batch.finish();
    if (!this.file.write(parts, release)) this.hold('backpressure');
  }

  private onSourceEnd(s: SourceState): void {
    if (s.ended) return;
    this.flushPartial(s, true);
    s.ended = true;
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    void this.checkAllEnded();
  }

  private async checkAllEnded(): Promise<void> {
    if (!this.sources.every((s) => s.ended) || this.endedSettled) return;
    await this.file.flush();
    if (this.endedSettled) return;
    this.settleEnded();
    this.emit('sourcesEnded');
  }

  private settleEnded(): void {
    if (this.endedSettled) return;
    this.endedSettled = true;
    this.resolveEnded();
  }

  private hold(reason: HoldReason): void {
    if (this.holds.has(reason)) return;
    this.holds.add(reason);
    if (reason === 'backpressure') this.pauses++;
    if (this.holds.size === 1) for (const s of this.sources) if (!s.ended) s.readable.pause();
  }

  private release(reason: HoldReason): void {
    if (!this.holds.delete(reason) || this.holds.size > 0) return;
    for (const s of this.sources) if (!s.ended) s.readable.resume();
    for (const s of this.sources) this.armTimer(s);
  }
}
