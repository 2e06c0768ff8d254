/**
 * Kubernetes' channel protocols over one WebSocket (what the kubelet's
 * streaming server and the API server speak for exec, attach and
 * port-forward): every message starts with the number of the channel it
 * belongs to, both ways.
 *
 * - `channel.k8s.io` and its v4/v5 variants: binary messages, a channel byte
 *   then raw bytes.
 * - `base64.channel.k8s.io` and `v4.base64.channel.k8s.io`: text messages,
 *   the channel as an ASCII digit ('0' + n) then the bytes in base64.
 * - `v5.channel.k8s.io` adds a half-close from the client: the message
 *   [255, n] ends channel n's input (how a client says stdin is done). The
 *   server never sends one: its output ends with the connection.
 *
 * Channels are known up front from the request (nothing opens them on the
 * wire); a message for a channel that is not open, or not readable, is
 * dropped, as upstream does.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** The v5 half-close marker: [STREAM_CLOSE, channel]. */
const STREAM_CLOSE = 255;
/** WebSocket close code for a normal end (clients read it as EOF on every channel). */
export const WS_NORMAL_CLOSURE = 1000;
const WS_PROTOCOL_ERROR = 1002;
/** After our close frame, how long the peer has to answer before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

export interface ChannelCodec {
  /** Text messages with base64 payloads (the base64.* protocols) instead of binary ones. */
  base64: boolean;
  /** The client may half-close a channel with [255, n] (v5). */
  halfClose: boolean;
}

/** The codec a negotiated subprotocol implies. */
export function codecFor(protocol: string): ChannelCodec {
  return { base64: protocol.includes('base64.'), halfClose: protocol === 'v5.channel.k8s.io' };
}

/** One channel: readable = what the client sends on it, writable = what we send. */
export class WebSocketChannel extends Duplex {
  constructor(
    private readonly conn: WebSocketChannels,
    readonly id: number,
    readonly readableByClient: boolean,
  ) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    this.conn.channelWantsMore(this);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.conn.send(this.id, chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    // Nothing goes on the wire: the protocols end a server's channel only with the connection.
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.conn.channelWantsMore(this);
    callback(err);
  }
}

export interface WebSocketChannelsEvents {
  /** With the error that ended the connection, if one did. */
  close: [Error | undefined];
}

export class WebSocketChannels extends EventEmitter<WebSocketChannelsEvents> {
  private readonly channels = new Map<number, WebSocketChannel>();
  /** Channels whose reader is full: the socket stays paused until none is. */
  private readonly starved = new Set<WebSocketChannel>();
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly codec: ChannelCodec,
  ) {
    super();
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('error', (err) => this.teardown(err));
    ws.on('close', () => this.teardown());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Opens channel `id`; `readable` says whether the client's messages on it are taken. */
  open(id: number, readable: boolean): WebSocketChannel {
    const channel = new WebSocketChannel(this, id, readable);
    channel.on('error', () => undefined);
    this.channels.set(id, channel);
    if (!readable) channel.push(null);
    return channel;
  }

  /** Sends `data` on channel `id` (an empty message is how the server says it is ready). */
  send(id: number, data: Buffer, callback: (error?: Error | null) => void): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) {
      callback(new Error('the streaming connection is closed'));
      return;
    }
    if (this.codec.base64) this.ws.send(String.fromCharCode(48 + id) + data.toString('base64'), { binary: false }, callback);
    else this.ws.send(Buffer.concat([Buffer.from([id]), data]), { binary: true }, callback);
  }

  /** Closes the connection normally once what is queued has gone out. */
  close(code = WS_NORMAL_CLOSURE): void {
    if (this.closed) return;
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code);
    // A peer that never answers the close frame must not hold the connection (and a daemon stop) open.
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
    this.teardown();
  }

  channelWantsMore(channel: WebSocketChannel): void {
    this.starved.delete(channel);
    if (this.starved.size === 0 && this.ws.isPaused) this.ws.resume();
  }

  private onMessage(data: Buffer, _isBinary: boolean): void {
    // Upstream reads text and binary messages alike; the codec decides how to decode them.
    if (this.closed || data.length === 0) return;
    if (this.codec.halfClose && data[0] === STREAM_CLOSE) {
      if (data.length !== 2) {
        this.close(WS_PROTOCOL_ERROR);
        return;
      }
      // Closing a channel the request did not open (stdin of a command without one) changes nothing.
      const channel = this.channels.get(data[1]!);
      if (channel?.readableByClient && !channel.readableEnded) channel.push(null);
      return;
    }
    const id = this.codec.base64 ? data[0]! - 48 : data[0]!;
    const channel = this.channels.get(id);
    if (!channel || !channel.readableByClient || channel.destroyed || channel.readableEnded) return;
    const payload = this.codec.base64 ? Buffer.from(data.toString('latin1', 1), 'base64') : data.subarray(1);
    if (payload.length > 0 && !channel.push(payload)) {
      this.starved.add(channel);
      this.ws.pause();
    }
  }

  private teardown(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.channels.values()) {
      // What the client sent still reaches the reader; then its input ends with the connection.
      if (!c.readableEnded) c.push(null);
      c.destroy(err);
    }
    this.emit('close', err);
  }
}
