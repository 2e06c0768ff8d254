import net from 'node:net';
import { HeaderField, HpackDecoder, HpackEncoder } from '../../src/grpc/hpack';

/**
 * A bare HTTP/2 client over a unix socket that writes the frames itself, so a
 * test can send exactly the bytes an old gRPC client sends (what real client
 * libraries no longer produce). It answers the server's SETTINGS and PINGs and
 * collects each stream's headers, data, trailers or reset.
 */

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function h2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

export interface StreamResult {
  headers?: HeaderField[];
  data: Buffer;
  trailers?: HeaderField[];
  /** RST_STREAM error code, when the server reset the stream. */
  reset?: number;
}

export class RawH2Client {
  private buf = Buffer.alloc(0);
  private readonly decoder = new HpackDecoder();
  /** Grpc-go's style: literals with incremental indexing, Huffman-coded. */
  readonly encoder = new HpackEncoder({ indexing: true, huffman: true });
  private readonly streams = new Map<number, StreamResult & { done: () => void }>();
  private block: { streamId: number; flags: number; parts: Buffer[] } | undefined;
  goaway: { lastStreamId: number; code: number } | undefined;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('close', () => {
      this.closed = true;
      for (const s of this.streams.values()) s.done();
    });
    socket.on('error', () => undefined);
  }

  /**
   * Connects and sends the client preface. With `waitForSettings`, resolves
   * only once the server's first SETTINGS frame has come, as grpc-go does
   * before it sends any request.
   */
  static connect(socketPath: string, options: { waitForSettings?: boolean; timeoutMs?: number } = {}): Promise<RawH2Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socketPath, () => {
        // As grpc-go: preface, SETTINGS, and a connection WINDOW_UPDATE.
        const wu = Buffer.alloc(4);
        wu.writeUInt32BE(65535 * 16);
        s.write(Buffer.concat([PREFACE, h2Frame(FRAME.SETTINGS, 0, 0), h2Frame(FRAME.WINDOW_UPDATE, 0, 0, wu)]));
        const client = new RawH2Client(s);
        if (!options.waitForSettings) return resolve(client);
        const timer = setTimeout(() => reject(new Error('no SETTINGS from the server')), options.timeoutMs ?? 5000);
        client.onSettings = () => {
          clearTimeout(timer);
          client.onSettings = undefined;
          resolve(client);
        };
      });
      s.once('error', reject);
    });
  }

  /** Called on each SETTINGS frame (not ACK) the server sends. */
  private onSettings: (() => void) | undefined;
  /** SETTINGS frames (not ACKs) received so far. */
  settingsReceived = 0;

  /** Sends a PING and resolves with how long its ACK took, in ms. */
  ping(timeoutMs = 5000): Promise<number> {
    const start = process.hrtime.bigint();
    const payload = Buffer.from('cri-ping');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no PING ACK in ${timeoutMs} ms`)), timeoutMs);
      this.onPingAck = (p) => {
        if (!p.equals(payload)) return;
        clearTimeout(timer);
        this.onPingAck = undefined;
        resolve(Number(process.hrtime.bigint() - start) / 1e6);
      };
      this.socket.write(h2Frame(FRAME.PING, 0, 0, payload));
    });
  }

  private onPingAck: ((payload: Buffer) => void) | undefined;

  /** Sends one request (HEADERS with `fields`, then one DATA frame with END_STREAM) and waits for its end. */
  request(streamId: number, fields: HeaderField[], body: Buffer, timeoutMs = 10_000): Promise<StreamResult & { headerBlock: Buffer }> {
    const headerBlock = this.encoder.encode(fields);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream ${streamId}: no end in ${timeoutMs} ms`)), timeoutMs);
      const result: StreamResult & { done: () => void } = {
        data: Buffer.alloc(0),
        done: () => {
          clearTimeout(timer);
          const { done: _d, ...rest } = result;
          resolve({ ...rest, headerBlock });
        },
      };
      this.streams.set(streamId, result);
      if (this.closed) return result.done();
      this.socket.write(Buffer.concat([h2Frame(FRAME.HEADERS, 0x4, streamId, headerBlock), h2Frame(FRAME.DATA, 0x1, streamId, body)]));
    });
  }

  private nextStreamId = 1;

  /** `request` on the next free stream ID. */
  call(fields: HeaderField[], body: Buffer): Promise<StreamResult & { headerBlock: Buffer }> {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    return this.request(id, fields, body);
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) return;
      const type = this.buf[3]!;
      const flags = this.buf[4]!;
      const streamId = this.buf.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      this.onFrame(type, flags, streamId, payload);
    }
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    const s = this.streams.get(streamId);
    switch (type) {
      case FRAME.SETTINGS:
        if (!(flags & 0x1)) {
          this.settingsReceived++;
          this.socket.write(h2Frame(FRAME.SETTINGS, 0x1, 0));
          this.onSettings?.();
        }
        break;
      case FRAME.PING:
        if (!(flags & 0x1)) this.socket.write(h2Frame(FRAME.PING, 0x1, 0, payload));
        else this.onPingAck?.(payload);
        break;
      case FRAME.GOAWAY:
        this.goaway = { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
        break;
      case FRAME.RST_STREAM:
        if (s) {
          s.reset = payload.readUInt32BE(0);
          s.done();
        }
        break;
      case FRAME.DATA:
        if (s) {
          s.data = Buffer.concat([s.data, payload]);
          if (flags & 0x1) s.done();
        }
        break;
      case FRAME.HEADERS:
      case FRAME.CONTINUATION: {
        let p = payload;
        if (type === FRAME.HEADERS) {
          if (flags & 0x8) p = p.subarray(1, p.length - p[0]!);
          if (flags & 0x20) p = p.subarray(5);
          this.block = { streamId, flags, parts: [] };
        }
        this.block!.parts.push(p);
        if (flags & 0x4) {
          const fields = this.decoder.decode(Buffer.concat(this.block!.parts));
          const target = this.streams.get(this.block!.streamId);
          if (target) {
            if (target.headers) target.trailers = fields;
            else target.headers = fields;
            if (this.block!.flags & 0x1) target.done();
          }
          this.block = undefined;
        }
        break;
      }
      default:
        break;
    }
  }
}

/** The header fields of a unary gRPC call as grpc-go 1.51 sends them, `:authority` as given. */
export function grpcCallFields(authority: string, path = '/runtime.v1.RuntimeService/Version', extra: HeaderField[] = []): HeaderField[] {
  return [
    { name: ':method', value: 'POST' },
    { name: ':scheme', value: 'http' },
    { name: ':path', value: path },
    { name: ':authority', value: authority },
    { name: 'content-type', value: 'application/grpc' },
    { name: 'user-agent', value: 'grpc-go/1.51.0' },
    { name: 'te', value: 'trailers' },
    ...extra,
  ];
}

/** A gRPC message: compressed flag, 4-byte length, the protobuf bytes. */
export function grpcMessage(bytes: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + bytes.length);
  b.writeUInt32BE(bytes.length, 1);
  Buffer.from(bytes).copy(b, 5);
  return b;
}
