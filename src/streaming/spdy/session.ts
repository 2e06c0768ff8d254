/**
 * The server side of one SPDY/3.1 connection, as Kubernetes streaming uses
 * it: the client (the kubelet proxying kubectl, or crictl) opens every
 * stream and names its role in a header; the server answers each
 * SYN_STREAM with a SYN_REPLY and then moves bytes.
 *
 * Flow control: Go's SPDY implementation (the only client that matters)
 * neither sends WINDOW_UPDATE nor waits for one, so windows are not enforced
 * in either direction; we still send WINDOW_UPDATE for what we consume, for
 * clients that do wait. Back-pressure comes from the socket instead: a slow
 * reader pauses the socket, a full socket pauses the writers.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import {
  controlFrame,
  ControlType,
  dataFrameHeader,
  FLAG_FIN,
  Frame,
  FrameReader,
  parseSynStream,
  RstStatus,
  uint32Payload,
} from './frames';
import { HeaderDeflater, HeaderInflater } from './header-codec';

/** Data frames are cut to this size so that streams interleave on the connection. */
const MAX_DATA_FRAME = 32 * 1024;
/** After GOAWAY, how long the peer has to close its side before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;
/** WINDOW_UPDATE is sent per this many bytes consumed on a stream. */
const WINDOW_UPDATE_EVERY = 32 * 1024;

/** One SPDY stream: readable = what the client sends on it, writable = what we send (end() sends FIN). */
export class SpdyStream extends Duplex {
  private unacknowledged = 0;

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: Record<string, string>,
  ) {
    super({ allowHalfOpen: true });
  }

  /** Bytes from the client; false when the consumer wants no more for now. */
  deliver(payload: Buffer): boolean {
    this.unacknowledged += payload.length;
    if (this.unacknowledged >= WINDOW_UPDATE_EVERY) {
      this.session.sendWindowUpdate(this.id, this.unacknowledged);
      this.unacknowledged = 0;
    }
    return this.push(payload);
  }

  /** Ends the stream abruptly in both directions. */
  reset(status = RstStatus.Cancel): void {
    this.session.sendReset(this.id, status);
    this.destroy();
  }

  override _read(): void {
    this.session.streamWantsMore(this);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.session.sendData(this.id, chunk, false, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.session.sendData(this.id, Buffer.alloc(0), true, callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.session.forget(this);
    callback(err);
  }
}

export interface SpdySessionEvents {
  stream: [SpdyStream];
  /** With the error that ended the connection, if one did. */
  close: [Error | undefined];
}

/**
 * What a session runs on: a TCP socket (SPDY/3.1 upgrade) or a byte stream
 * over a WebSocket (client-go's SPDY tunnel for port-forward).
 */
export type SpdyTransport = Duplex & { setNoDelay?: (noDelay?: boolean) => unknown };

export class SpdySession extends EventEmitter<SpdySessionEvents> {
  private readonly reader = new FrameReader();
  private readonly inflater = new HeaderInflater();
  private readonly deflater = new HeaderDeflater();
  private readonly streams = new Map<number, SpdyStream>();
  private readonly starved = new Set<SpdyStream>();
  private lastStreamId = 0;
  private closed = false;
  /** Frames are handled strictly in order; header decoding is asynchronous. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly socket: SpdyTransport,
    head: Buffer,
  ) {
    super();
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', (err) => this.teardown(err));
    socket.on('close', () => this.teardown());
    if (head.length > 0) this.onBytes(head);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Says goodbye (GOAWAY) and closes the connection once queued bytes are out. */
  close(): void {
    if (this.closed) return;
    this.socket.write(controlFrame(ControlType.GoAway, 0, uint32Payload(this.lastStreamId, 0)));
    this.socket.end();
    // A peer that never closes its side must not hold the connection (and a daemon stop) open.
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    this.teardown();
  }

  sendData(streamId: number, data: Buffer, fin: boolean, callback: (error?: Error | null) => void): void {
    if (this.closed || this.socket.destroyed) {
      callback(new Error('the streaming connection is closed'));
      return;
    }
    let ok = true;
    let pos = 0;
    do {
      const piece = data.subarray(pos, pos + MAX_DATA_FRAME);
      pos += piece.length;
      const last = pos >= data.length;
      ok = this.socket.write(dataFrameHeader(streamId, last && fin ? FLAG_FIN : 0, piece.length));
      if (piece.length > 0) ok = this.socket.write(piece);
    } while (pos < data.length);
    if (ok) callback();
    else this.socket.once('drain', () => callback());
  }

  sendWindowUpdate(streamId: number, delta: number): void {
    if (!this.closed) this.socket.write(controlFrame(ControlType.WindowUpdate, 0, uint32Payload(streamId, delta)));
  }

  sendReset(streamId: number, status: RstStatus): void {
    if (!this.closed) this.socket.write(controlFrame(ControlType.RstStream, 0, uint32Payload(streamId, status)));
  }

  /** A stream's reader wants data again: resume the socket once no stream is full. */
  streamWantsMore(stream: SpdyStream): void {
    this.starved.delete(stream);
    if (this.starved.size === 0 && this.socket.isPaused()) this.socket.resume();
  }

  forget(stream: SpdyStream): void {
    this.streams.delete(stream.id);
    this.streamWantsMore(stream);
  }

  private onBytes(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.teardown(err as Error);
      return;
    }
    for (const frame of frames) {
      this.chain = this.chain.then(() => this.onFrame(frame)).catch((err: unknown) => this.teardown(err as Error));
    }
  }

  private async onFrame(frame: Frame): Promise<void> {
    if (this.closed) return;
    if (!frame.control) {
      const stream = this.streams.get(frame.streamId);
      if (!stream) {
        this.sendReset(frame.streamId, RstStatus.InvalidStream);
        return;
      }
      if (frame.payload.length > 0 && !stream.deliver(frame.payload)) {
        this.starved.add(stream);
        this.socket.pause();
      }
      if (frame.flags & FLAG_FIN) stream.push(null);
      return;
    }
    switch (frame.type) {
      case ControlType.SynStream: {
        const { streamId, headerBlock } = parseSynStream(frame.payload);
        // The header block must be decoded even for a stream we refuse: the zlib context is shared.
        const headers = await this.inflater.decode(headerBlock);
        if (streamId % 2 === 0 || streamId <= this.lastStreamId) {
          this.sendReset(streamId, RstStatus.ProtocolError);
          return;
        }
        this.lastStreamId = streamId;
        const stream = new SpdyStream(this, streamId, headers);
        this.streams.set(streamId, stream);
        const reply = Buffer.concat([uint32Payload(streamId), await this.deflater.encode({})]);
        this.socket.write(controlFrame(ControlType.SynReply, 0, reply));
        if (frame.flags & FLAG_FIN) stream.push(null);
        this.emit('stream', stream);
        return;
      }
      case ControlType.RstStream: {
        const streamId = frame.payload.readUInt32BE(0) & 0x7fffffff;
        this.streams.get(streamId)?.destroy(new Error(`the client reset stream ${streamId}`));
        return;
      }
      case ControlType.Ping:
        // Echo the client's ping unchanged.
        this.socket.write(controlFrame(ControlType.Ping, 0, frame.payload));
        return;
      case ControlType.GoAway:
        this.teardown();
        return;
      case ControlType.Headers:
        // Carries more headers for a stream (it still needs decoding to keep the zlib context in step).
        if (frame.payload.length > 4) await this.inflater.decode(frame.payload.subarray(4));
        return;
      default:
        // SETTINGS, WINDOW_UPDATE and anything newer need no answer.
        return;
    }
  }

  private teardown(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.inflater.close();
    this.deflater.close();
    for (const s of [...this.streams.values()]) s.destroy(err);
    this.streams.clear();
    if (!this.socket.destroyed) {
      if (err) this.socket.destroy();
      else this.socket.end();
    }
    this.emit('close', err);
  }
}
