/**
 * A WebSocket as a byte stream, for `SPDY/3.1+portforward.k8s.io`: client-go
 * tunnels a whole SPDY connection through binary messages, with message
 * boundaries that mean nothing (it writes whatever its framer flushes). The
 * SPDY session runs on this Duplex as on a socket.
 */
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { WS_NORMAL_CLOSURE } from './channels';

export class WebSocketByteStream extends Duplex {
  constructor(private readonly ws: WebSocket) {
    super({ allowHalfOpen: false });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        // client-go's tunnel refuses text messages too; nothing sane can follow one.
        this.destroy(new Error('text message on a SPDY tunnel'));
        return;
      }
      if (!this.push(data)) ws.pause();
    });
    ws.on('error', (err) => this.destroy(err));
    ws.on('close', () => {
      this.push(null);
      this.destroy();
    });
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send(chunk, callback);
  }

  /** Writes queued while a message was going out leave as one message, not one per SPDY frame piece. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.send(Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(WS_NORMAL_CLOSURE);
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.CLOSED) this.ws.terminate();
    callback(err);
  }

  private send(data: Buffer, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      callback(new Error('the streaming connection is closed'));
      return;
    }
    this.ws.send(data, { binary: true }, (err) => callback(err ?? null));
  }
}
