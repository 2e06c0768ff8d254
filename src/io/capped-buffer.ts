/**
 * Bounded capture of a process's output (ExecSync). Past the cap the bytes are
 * still read and thrown away: if we stopped reading, the pipe would fill and
 * the process would block in write() and never exit, and ExecSync would run
 * into its timeout instead of returning.
 */
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { InvalidArgumentError, withContext } from '../errors';

export interface CapturedOutput {
  /** The first maxBytes bytes (or all of them). */
  data: Buffer;
  /** True when bytes beyond maxBytes arrived and were discarded. */
  truncated: boolean;
  /** All bytes seen, kept and discarded. */
  totalBytes: number;
}

/** A Writable sink that never applies back-pressure and keeps at most maxBytes. */
export class CappedBuffer extends Writable {
  readonly maxBytes: number;
  private chunks: Buffer[] = [];
  private kept = 0;
  private seen = 0;

  constructor(maxBytes: number) {
    super({ decodeStrings: true });
    if (!(Number.isInteger(maxBytes) && maxBytes >= 0)) {
      throw new InvalidArgumentError(`maxBytes must be a non-negative integer, not ${maxBytes}`);
    }
    this.maxBytes = maxBytes;
  }

  get truncated(): boolean {
    return this.seen > this.kept;
  }

  get totalBytes(): number {
    return this.seen;
  }

  get length(): number {
    return this.kept;
  }

  /** Adds a chunk synchronously; what `_write` and captureCapped use. */
  append(chunk: Buffer): void {
    this.seen += chunk.length;
    const room = this.maxBytes - this.kept;
    if (room <= 0) return;
    if (chunk.length <= room) {
      this.chunks.push(chunk);
      this.kept += chunk.length;
    } else {
      // Copy so the kept slice does not pin the whole (up to 64 KiB) chunk.
      this.chunks.push(Buffer.from(chunk.subarray(0, room)));
      this.kept += room;
    }
  }

  data(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.kept)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  result(): CapturedOutput {
    return { data: this.data(), truncated: this.truncated, totalBytes: this.seen };
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.append(chunk);
    callback();
  }
}

/**
 * Reads `source` to its end, keeping at most maxBytes. Resolves on 'end', or
 * on 'close' without 'end' (the source was destroyed, e.g. on an ExecSync
 * timeout: what arrived so far is the answer); rejects on a stream error.
 * `sink` lets the caller watch progress or pass a sink it already holds.
 */
export function captureCapped(
  source: Readable,
  maxBytes: number,
  sink: CappedBuffer = new CappedBuffer(maxBytes),
): Promise<CapturedOutput> {
  return new Promise<CapturedOutput>((resolve, reject) => {
    const onData = (chunk: Buffer | string): void => {
      sink.append(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    };
    const cleanup = (): void => {
      source.off('data', onData);
      source.off('end', onDone);
      source.off('close', onDone);
      source.off('error', onError);
    };
    const onDone = (): void => {
      cleanup();
      resolve(sink.result());
    };
    const onError = (err: Error): void => {
      cleanup();
      source.on('error', () => undefined);
      reject(withContext(err, 'reading process output'));
    };
    source.on('data', onData);
    source.on('end', onDone);
    source.on('close', onDone);
    source.on('error', onError);
    // A source paused earlier does not start flowing just because of a 'data' listener.
    source.resume();
  });
}
