/**
 * SPDY/3.1 framing (the subset Kubernetes streaming uses). Every frame has
 * an 8-byte header:
 *   control: 1 | version(15) | type(16) | flags(8) | length(24)
 *   data:    0 | stream-id(31)          | flags(8) | length(24)
 */
export const SPDY_VERSION = 3;

export enum ControlType {
  SynStream = 1,
  SynReply = 2,
  RstStream = 3,
  Settings = 4,
  Ping = 6,
  GoAway = 7,
  Headers = 8,
  WindowUpdate = 9,
}

export const FLAG_FIN = 0x01;

/** RST_STREAM status codes used here. */
export enum RstStatus {
  ProtocolError = 1,
  InvalidStream = 2,
  RefusedStream = 3,
  Cancel = 5,
  InternalError = 6,
}

export interface ControlFrame {
  control: true;
  type: number;
  flags: number;
  payload: Buffer;
}

export interface DataFrame {
  control: false;
  streamId: number;
  flags: number;
  payload: Buffer;
}

export type Frame = ControlFrame | DataFrame;

/** Largest frame payload accepted: SPDY allows 2^24-1; nothing Kubernetes sends comes near. */
const MAX_PAYLOAD = (1 << 24) - 1;

/**
 * Splits a byte stream into frames. Bytes are kept until a whole frame is
 * there; the frames are returned in order.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingLength = 0;

  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingLength += chunk.length;
    const frames: Frame[] = [];
    while (this.pendingLength >= 8) {
      const head = this.peek(8);
      const length = head.readUIntBE(5, 3);
      if (length > MAX_PAYLOAD) throw new Error(`SPDY frame of ${length} bytes`);
      if (this.pendingLength < 8 + length) break;
      const whole = this.take(8 + length);
      const flags = whole[4]!;
      const payload = whole.subarray(8);
      if (whole[0]! & 0x80) {
        const version = whole.readUInt16BE(0) & 0x7fff;
        if (version !== SPDY_VERSION) throw new Error(`SPDY version ${version} is not supported`);
        frames.push({ control: true, type: whole.readUInt16BE(2), flags, payload });
      } else {
        frames.push({ control: false, streamId: whole.readUInt32BE(0) & 0x7fffffff, flags, payload });
      }
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.pending[0]!.length >= n) return this.pending[0]!.subarray(0, n);
    return Buffer.concat(this.pending).subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLength = rest.length;
    // A copy, so the frame does not pin a large read buffer.
    return Buffer.from(out);
  }
}

export function controlFrame(type: ControlType, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(payload.length, 4);
  head[4] = flags;
  return Buffer.concat([head, payload]);
}

export function dataFrameHeader(streamId: number, flags: number, length: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head.writeUInt32BE(length, 4);
  head[4] = flags;
  return head;
}

export function uint32Payload(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
}

/** SYN_STREAM payload: stream-id, associated-to, priority/slot, then the compressed header block. */
export function parseSynStream(payload: Buffer): { streamId: number; headerBlock: Buffer } {
  if (payload.length < 10) throw new Error('short SYN_STREAM frame');
  return { streamId: payload.readUInt32BE(0) & 0x7fffffff, headerBlock: payload.subarray(10) };
}

/** Header name/value blocks, before compression: counts and lengths are 32-bit. */
export function encodeHeaderBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [uint32Payload(Object.keys(headers).length)];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(value, 'utf8');
    parts.push(uint32Payload(n.length), n, uint32Payload(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Names are lower-cased; several values of one name are joined by NUL in SPDY, kept as the first here. */
export function decodeHeaderBlock(block: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  const u32 = () => {
    if (pos + 4 > block.length) throw new Error('truncated SPDY header block');
    const v = block.readUInt32BE(pos);
    pos += 4;
    return v;
  };
  const str = () => {
    const len = u32();
    if (pos + len > block.length) throw new Error('truncated SPDY header block');
    const s = block.toString('utf8', pos, pos + len);
    pos += len;
    return s;
  };
  const count = u32();
  for (let i = 0; i < count; i++) {
    const name = str().toLowerCase();
    const value = str();
    out[name] ??= value.split('\0')[0]!;
  }
  return out;
}
