import { Duplex } from 'node:stream';
import type net from 'node:net';
import { HeaderField, HpackDecoder, HpackEncoder, HpackError } from './hpack';

/**
 * grpc-go before 1.57 (every kubelet up to Kubernetes 1.28, crictl 1.26) sends
 * the unix socket's path as HTTP/2 `:authority`. Node's nghttp2 refuses a `/`
 * there and resets the stream before grpc-js sees it, so those clients can call
 * nothing. This module sits between the socket and Node's HTTP/2 server and
 * rewrites only that: bytes pass unchanged except the client's header blocks,
 * which are decoded (keeping the client's HPACK dynamic table) and, when an
 * authority holds characters nghttp2 refuses, re-encoded with them
 * percent-encoded (as grpc-go 1.57+ does itself). Every other check of Node's
 * HTTP/2 stack still applies to what it receives.
 *
 * The first header block of a connection decides: when it needs no rewrite,
 * the client's own bytes go through from then on, unparsed (the authority is
 * the channel's, the same on every call; a later odd one reaches nghttp2 as
 * the client sent it). From the first rewritten
 * block on, every block is re-encoded by our encoder: that block starts with a
 * table size update to 0 (emptying the server's table) and nothing is indexed
 * after, so the two tables can never drift apart.
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;
const TYPE_HEADERS = 0x1;
const TYPE_SETTINGS = 0x4;
const TYPE_PING = 0x6;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE's initial value: the least any peer accepts, so re-encoded frames never exceed it. */
const MAX_FRAME_PAYLOAD = 16384;
/** A client's compressed header block larger than this is refused (nghttp2's own limits are lower). */
const MAX_BLOCK = 1024 * 1024;

/** RFC 3986 authority characters (what nghttp2_check_authority accepts). */
const AUTHORITY_OK = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;

/** The authority with every octet nghttp2 would refuse percent-encoded; `/run/x.sock` -> `%2Frun%2Fx.sock`. */
export function sanitizeAuthority(value: string): string {
  if (AUTHORITY_OK.test(value)) return value;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    out += AUTHORITY_OK.test(c) ? c : `%${(c.charCodeAt(0) & 0xff).toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const isAuthority = (name: string) => name === ':authority' || name === 'host';

function needsRewrite(fields: readonly HeaderField[]): boolean {
  return fields.some((f) => isAuthority(f.name) && !AUTHORITY_OK.test(f.value));
}

/** Why a connection was cut: the client broke HTTP/2 after we had started re-encoding. */
export class ClientProtocolError extends Error {}

interface BlockStart {
  streamId: number;
  flags: number;
  /** Stream dependency and weight, kept when the HEADERS frame had PRIORITY. */
  priority?: Buffer;
}

/**
 * The client->server byte stream as a pure transformation: feed it what the
 * socket read, forward what it returns. Throws ClientProtocolError when the
 * connection must be closed.
 */
export class ClientStreamRewriter {
  private mode: 'preface' | 'passthrough' | 'reencode' | 'raw' = 'preface';
  /**
   * True while the client still owes the ACK of a SETTINGS frame that we, not
   * the HTTP/2 server, sent (see ConnectionSorter). That ACK is dropped: the
   * server never sent those settings, and nghttp2 fails a connection on an ACK
   * it did not ask for. Frames are parsed until it has come.
   */
  private ownSettingsAckPending: boolean;
  /** A PING arrived (the client waits for its answer). */
  pingSeen = false;
  private prefaceSeen = 0;
  private header: Buffer = Buffer.alloc(0);
  /** Payload bytes of the current frame still to come. */
  private remaining = 0;
  private frameType = 0;
  private frameFlags = 0;
  private frameStream = 0;
  /** The current header block: its raw frames (to pass on unchanged) and payloads. */
  private rawFrames: Buffer[] = [];
  private payload: Buffer[] = [];
  private blockBytes = 0;
  private block: BlockStart | undefined;
  private readonly decoder = new HpackDecoder();
  private readonly encoder = new HpackEncoder({ indexing: false, huffman: false });
  /** Header blocks rewritten so far (for logs and tests). */
  rewrites = 0;

  constructor(options: { ownSettingsSent?: boolean } = {}) {
    this.ownSettingsAckPending = options.ownSettingsSent ?? false;
  }

  /**
   * Nothing more of this connection needs us: its first header block needed no
   * rewrite (or it is not HTTP/2) and no ACK of ours is still to be dropped.
   */
  get done(): boolean {
    return this.mode === 'raw' && !this.ownSettingsAckPending;
  }

  /** Its first header block needed a rewrite: every later block will be re-encoded too. */
  get rewriting(): boolean {
    return this.mode === 'reencode';
  }

  feed(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.done) {
        out.push(pos ? chunk.subarray(pos) : chunk);
        break;
      }
      if (this.mode === 'preface') {
        const n = Math.min(PREFACE.length - this.prefaceSeen, chunk.length - pos);
        const part = chunk.subarray(pos, pos + n);
        out.push(part);
        pos += n;
        if (!part.equals(PREFACE.subarray(this.prefaceSeen, this.prefaceSeen + n))) {
          // Not HTTP/2 with prior knowledge: nothing of ours to fix; nghttp2 answers it.
          this.mode = 'raw';
          this.ownSettingsAckPending = false;
          continue;
        }
        this.prefaceSeen += n;
        if (this.prefaceSeen === PREFACE.length) this.mode = 'passthrough';
        continue;
      }
      if (this.remaining === 0 && this.header.length < FRAME_HEADER) {
        const n = Math.min(FRAME_HEADER - this.header.length, chunk.length - pos);
        this.header = this.header.length ? Buffer.concat([this.header, chunk.subarray(pos, pos + n)]) : chunk.subarray(pos, pos + n);
        pos += n;
        if (this.header.length < FRAME_HEADER) break;
        this.startFrame(out);
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - pos);
      const part = chunk.subarray(pos, pos + n);
      pos += n;
      this.remaining -= n;
      if (this.inBlockFrame()) {
        this.rawFrames.push(part);
        this.payload.push(part);
      } else {
        out.push(part);
      }
      if (this.remaining === 0) this.endFrame(out);
    }
    return out;
  }

  /** The current frame belongs to a header block we read (in raw mode frames are only counted, for our ACK). */
  private inBlockFrame(): boolean {
    return this.mode !== 'raw' && (this.frameType === TYPE_HEADERS || this.frameType === TYPE_CONTINUATION);
  }

  private startFrame(out: Buffer[]): void {
    const h = this.header;
    this.remaining = h.readUIntBE(0, 3);
    this.frameType = h[3]!;
    this.frameFlags = h[4]!;
    this.frameStream = h.readUInt32BE(5) & 0x7fffffff;
    this.header = Buffer.alloc(0);
    if (this.frameType === TYPE_PING) this.pingSeen = true;
    if (this.ownSettingsAckPending && this.frameType === TYPE_SETTINGS && this.frameFlags & FLAG_ACK && this.remaining === 0) {
      // Ours (the server has sent none yet when a client can first answer ours); dropped.
      this.ownSettingsAckPending = false;
      return;
    }
    if (this.mode === 'raw') {
      out.push(h);
      if (this.remaining === 0) this.endFrame(out);
      return;
    }
    const expectingContinuation = this.block !== undefined;
    if (expectingContinuation && (this.frameType !== TYPE_CONTINUATION || this.frameStream !== this.block!.streamId)) {
      // RFC 7540 6.10: nothing may interleave with a header block.
      this.fail(out, h, 'a frame interleaved with a header block');
      return;
    }
    if (this.frameType === TYPE_CONTINUATION && !expectingContinuation) {
      this.fail(out, h, 'CONTINUATION without a header block');
      return;
    }
    if (this.inBlockFrame()) {
      this.blockBytes += this.remaining;
      if (this.blockBytes > MAX_BLOCK) {
        this.fail(out, h, 'header block too large');
        return;
      }
      if (this.frameType === TYPE_HEADERS) this.block = { streamId: this.frameStream, flags: this.frameFlags };
      this.rawFrames.push(h);
      this.payloadStart = this.payload.length;
    } else {
      out.push(h);
    }
    if (this.remaining === 0) this.endFrame(out);
  }

  /** Index into `payload` where the current frame's payload starts. */
  private payloadStart = 0;

  private endFrame(out: Buffer[]): void {
    if (!this.inBlockFrame() || this.mode === 'raw') return;
    if (this.frameType === TYPE_HEADERS) {
      // Strip padding and priority so `payload` holds only the block fragment.
      const frame = Buffer.concat(this.payload.splice(this.payloadStart));
      let start = 0;
      let end = frame.length;
      if (this.frameFlags & FLAG_PADDED) {
        const pad = frame[0];
        start = 1;
        if (pad === undefined || pad > frame.length - 1) return this.fail(out, undefined, 'bad HEADERS padding');
        end -= pad;
      }
      if (this.frameFlags & FLAG_PRIORITY) {
        if (end - start < 5) return this.fail(out, undefined, 'short HEADERS priority');
        this.block!.priority = frame.subarray(start, start + 5);
        start += 5;
      }
      if (start > end) return this.fail(out, undefined, 'bad HEADERS padding');
      this.payload.push(frame.subarray(start, end));
    }
    if (this.frameFlags & FLAG_END_HEADERS) this.endBlock(out);
  }

  private endBlock(out: Buffer[]): void {
    const block = this.block!;
    const raw = this.rawFrames;
    const fragment = Buffer.concat(this.payload);
    this.block = undefined;
    this.rawFrames = [];
    this.payload = [];
    this.blockBytes = 0;
    let fields: HeaderField[];
    try {
      fields = this.decoder.decode(fragment);
    } catch (err) {
      if (!(err instanceof HpackError)) throw err;
      return this.fail(out, undefined, `undecodable header block: ${err.message}`, raw);
    }
    if (this.mode === 'passthrough' && !needsRewrite(fields)) {
      out.push(...raw);
      // A connection's :authority is its channel's (grpc-go and grpc-js set it once per
      // connection), so a client whose first block needs nothing never will: the rest of its
      // bytes go through without being parsed, which is most of what this layer costs per call.
      this.mode = 'raw';
      return;
    }
    if (this.mode === 'passthrough') {
      this.mode = 'reencode';
      // The server's table holds what the client's blocks indexed so far: empty it, and index nothing after.
      this.encoder.resizeTable(0);
    }
    this.rewrites++;
    const fixed = fields.map((f) => (isAuthority(f.name) ? { ...f, value: sanitizeAuthority(f.value) } : f));
    out.push(...headerFrames(block, this.encoder.encode(fixed)));
  }

  /**
   * A client that breaks HTTP/2 framing or HPACK. While its own bytes still go
   * through, nghttp2 sees exactly them and answers the error the standard way;
   * once we re-encode, its table and the client's no longer agree, so the
   * connection is cut.
   */
  private fail(out: Buffer[], header: Buffer | undefined, why: string, raw: Buffer[] = []): void {
    if (this.mode === 'reencode') throw new ClientProtocolError(why);
    out.push(...raw, ...this.rawFrames);
    if (header) out.push(header);
    this.rawFrames = [];
    this.payload = [];
    this.block = undefined;
    this.mode = 'raw';
  }
}

/** HEADERS (+ CONTINUATION) frames carrying `fragment`, each within the initial max frame size. */
function headerFrames(block: BlockStart, fragment: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  const first = block.priority ? MAX_FRAME_PAYLOAD - 5 : MAX_FRAME_PAYLOAD;
  let pos = 0;
  let isFirst = true;
  do {
    const room = isFirst ? first : MAX_FRAME_PAYLOAD;
    const part = fragment.subarray(pos, pos + room);
    pos += part.length;
    const last = pos >= fragment.length;
    const head = Buffer.alloc(FRAME_HEADER);
    const prio = isFirst && block.priority ? block.priority : undefined;
    head.writeUIntBE(part.length + (prio ? 5 : 0), 0, 3);
    head[3] = isFirst ? TYPE_HEADERS : TYPE_CONTINUATION;
    head[4] = (isFirst ? block.flags & (FLAG_END_STREAM | (prio ? FLAG_PRIORITY : 0)) : 0) | (last ? FLAG_END_HEADERS : 0);
    head.writeUInt32BE(block.streamId, 5);
    frames.push(head);
    if (prio) frames.push(prio);
    frames.push(part);
    isFirst = false;
  } while (pos < fragment.length);
  return frames;
}

/**
 * The socket as Node's HTTP/2 server should see it: reads go through a
 * ClientStreamRewriter, writes go to the socket unchanged. `alreadyRead` is
 * what the rewriter already returned for bytes read before this wrapper.
 */
export class AuthorityRewritingSocket extends Duplex {
  constructor(
    private readonly socket: net.Socket,
    private readonly onProtocolError: (err: ClientProtocolError) => void,
    readonly rewriter = new ClientStreamRewriter(),
    alreadyRead: Buffer[] = [],
  ) {
    super({ allowHalfOpen: false });
    for (const p of alreadyRead) if (p.length) this.push(p);
    socket.on('data', (chunk: Buffer) => {
      let parts: Buffer[];
      try {
        parts = this.rewriter.feed(chunk);
      } catch (err) {
        if (!(err instanceof ClientProtocolError)) throw err;
        this.onProtocolError(err);
        this.destroy();
        return;
      }
      let more = true;
      for (const p of parts) if (p.length) more = this.push(p) && more;
      if (!more) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.resume();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.socket.write(Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}

/** An empty SETTINGS frame: a valid server connection preface, with every setting at its default. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, TYPE_SETTINGS, 0, 0, 0, 0, 0]);

/** How a connection reached the HTTP/2 server. */
export type ConnectionPath = 'native' | 'rewritten';

export interface ConnectionSorterOptions {
  /** Gives the connection to the HTTP/2 server: the socket itself, or the rewriting wrapper. */
  serve(connection: net.Socket | Duplex, path: ConnectionPath): void;
  onProtocolError(err: ClientProtocolError): void;
  /**
   * A client that sends no first request within this long (an idle channel)
   * is served through the wrapper, which passes its frames on at once.
   */
  sortWithinMs: number;
}

/**
 * Sorts each connection before the HTTP/2 server sees it. A client whose first
 * header block needs no rewrite (every gRPC client of the last years) gets its
 * socket handed to Node's HTTP/2 server natively, with what was read so far
 * put back into the socket (Node feeds a socket's buffered bytes to the new
 * session), so its calls cost no JS stream in between. Only old clients, and
 * connections that could not be sorted in time, go through
 * AuthorityRewritingSocket.
 *
 * grpc-go clients send no request until they have the server's SETTINGS, and
 * Node's session sends those only once it owns the socket; so an empty
 * SETTINGS frame of our own goes out first, and the client's ACK of it is
 * dropped before the server sees the bytes (the rewriter does that). Node's
 * own SETTINGS follow once the session starts, as a later SETTINGS frame,
 * which HTTP/2 allows at any time.
 */
export function sortConnection(socket: net.Socket, options: ConnectionSorterOptions): void {
  const rewriter = new ClientStreamRewriter({ ownSettingsSent: true });
  const held: Buffer[] = [];
  let sorted = false;
  const finish = (): void => {
    sorted = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
  };
  const throughWrapper = (): void => {
    finish();
    const wrapped = new AuthorityRewritingSocket(socket, options.onProtocolError, rewriter, held.splice(0));
    // The http2 session owns the wrapper once served; an error before that must not go unhandled.
    wrapped.on('error', () => undefined);
    options.serve(wrapped, 'rewritten');
  };
  const onData = (chunk: Buffer): void => {
    try {
      held.push(...rewriter.feed(chunk));
    } catch (err) {
      if (!(err instanceof ClientProtocolError)) throw err;
      finish();
      options.onProtocolError(err);
      socket.destroy();
      return;
    }
    if (rewriter.done) {
      finish();
      socket.pause();
      const bytes = Buffer.concat(held.splice(0));
      if (bytes.length) socket.unshift(bytes);
      options.serve(socket, 'native');
    } else if (rewriter.rewriting || rewriter.pingSeen) {
      // An old client, or one that waits for a PING's answer: the server must see its frames now.
      throughWrapper();
    }
  };
  // Before it is sorted, nobody else reads the socket: an end or error closes it.
  const onEnd = (): void => {
    finish();
    socket.destroy();
  };
  const onError = (): void => {
    finish();
    socket.destroy();
  };
  const timer = setTimeout(() => {
    if (!sorted && !socket.destroyed) throughWrapper();
  }, options.sortWithinMs);
  timer.unref();
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
  socket.write(EMPTY_SETTINGS);
}
