/**
 * A small SPDY/3.1 client for tests: what kubectl (through Go's spdystream)
 * does against a CRI streaming server, written from the protocol and kept
 * independent of the server code under src/streaming/ (it shares only the
 * dictionary constant) so that the two can check each other.
 *
 *   const r = await remoteCommand(execUrl, { stdout: true, stderr: true });
 *   // r.protocol, r.stdout, r.stderr, r.exitCode, r.status
 *   const f = await portForward(pfUrl, 8080, Buffer.from('ping'));
 *   // f.data, f.error
 *
 * SpdyClientConnection underneath is usable on its own for tests that need
 * to poke at the framing directly.
 *
 * Scope: plain http:// URLs (the CRI streaming servers in the tests do not
 * use TLS), no flow-control enforcement (spdystream has none either, and
 * kubectl never sends WINDOW_UPDATE), no server push.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from '../../src/streaming/spdy/dictionary';

export const SPDY_VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const FLAG_FIN = 0x01;

export const RstStatus: Readonly<Record<number, string>> = {
  1: 'PROTOCOL_ERROR',
  2: 'INVALID_STREAM',
  3: 'REFUSED_STREAM',
  4: 'UNSUPPORTED_VERSION',
  5: 'CANCEL',
  6: 'INTERNAL_ERROR',
  7: 'FLOW_CONTROL_ERROR',
  8: 'STREAM_IN_USE',
  9: 'STREAM_ALREADY_CLOSED',
  10: 'INVALID_CREDENTIALS',
  11: 'FRAME_TOO_LARGE',
};
const RST_CANCEL = 5;

export const REMOTECOMMAND_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'] as const;
export const PORTFORWARD_PROTOCOL = 'portforward.k8s.io';

const FRAME_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k]));

/** Largest data frame payload this client sends (the format allows 2^24-1; smaller frames interleave better). */
const MAX_DATA_CHUNK = 32 * 1024;
/** A decompressed header block beyond this is treated as a protocol error rather than buffered. */
const MAX_HEADER_BLOCK = 1024 * 1024;

export type HeaderMap = Map<string, string[]>;

/** One frame as seen on the wire, for traces. */
export interface FrameRecord {
  dir: 'in' | 'out';
  /** Control frame name, or 'DATA'. */
  type: string;
  streamId: number;
  flags: number;
  length: number;
  /** Short decoded detail: headers, RST status, ping id, … */
  info?: string;
}

// ---------------------------------------------------------------------------
// Header compression

/**
 * One zlib context that lives as long as the connection. SPDY/3 runs all
 * header blocks of one direction through a single deflate stream (dictionary
 * primed once, state carried over), each block ending on a sync flush, so a
 * fresh deflateSync/inflateSync per block only works for the first block.
 *
 * Node's stream API is used with the flush mode preset to Z_SYNC_FLUSH: every
 * write becomes one flushed block. The output is pulled with read() once the
 * write callback fires (zlib pushes all output of a chunk before it completes
 * the chunk); relying on 'data' events instead can deliver the first push a
 * tick after the callback. Jobs are chained so blocks never interleave.
 */
class ZlibContext {
  private chain: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;

  constructor(private readonly z: zlib.Deflate | zlib.Inflate) {
    z.on('error', (e: Error) => {
      this.failure ??= e;
    });
  }

  static deflater(): ZlibContext {
    return new ZlibContext(zlib.createDeflate({ dictionary: SPDY3_DICTIONARY, flush: zlib.constants.Z_SYNC_FLUSH }));
  }

  static inflater(): ZlibContext {
    return new ZlibContext(zlib.createInflate({ dictionary: SPDY3_DICTIONARY, flush: zlib.constants.Z_SYNC_FLUSH }));
  }

  /** Runs one block through the context and returns exactly the bytes it produced. */
  process(input: Buffer): Promise<Buffer> {
    const job = this.chain.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          if (this.failure) {
            reject(this.failure);
            return;
          }
          const onError = (e: Error): void => reject(e);
          this.z.once('error', onError);
          this.z.write(input, (err) => {
            this.z.off('error', onError);
            if (err) {
              reject(err);
              return;
            }
            const out: Buffer[] = [];
            for (let c: unknown = this.z.read(); c !== null; c = this.z.read()) out.push(c as Buffer);
            resolve(Buffer.concat(out));
          });
        }),
    );
    this.chain = job.catch(() => undefined);
    return job;
  }

  close(): void {
    this.z.destroy();
  }
}

/** Serialises a SPDY/3 name/value block (before compression): 32-bit counts and lengths, values NUL-joined. */
export function encodeHeaderBlock(headers: Readonly<Record<string, string | readonly string[]>>): Buffer {
  const entries = Object.entries(headers);
  const parts: Buffer[] = [u32(entries.length)];
  for (const [name, value] of entries) {
    // spdystream flags upper-case names as an error; SPDY requires lower case.
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(typeof value === 'string' ? value : value.join('\0'), 'utf8');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Parses an uncompressed name/value block. */
export function decodeHeaderBlock(block: Buffer): HeaderMap {
  const out: HeaderMap = new Map();
  let off = 0;
  const need = (n: number): void => {
    if (off + n > block.length) throw new Error(`truncated SPDY header block (${block.length} bytes, need ${off + n})`);
  };
  need(4);
  const count = block.readUInt32BE(off);
  off += 4;
  for (let i = 0; i < count; i++) {
    need(4);
    const nl = block.readUInt32BE(off);
    off += 4;
    need(nl);
    const name = block.toString('utf8', off, off + nl);
    off += nl;
    need(4);
    const vl = block.readUInt32BE(off);
    off += 4;
    need(vl);
    const values = block.toString('utf8', off, off + vl).split('\0');
    off += vl;
    out.set(name, [...(out.get(name) ?? []), ...values]);
  }
  if (off !== block.length) throw new Error(`SPDY header block has ${block.length - off} stray bytes after ${count} pairs`);
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > 0xffffff) throw new Error(`control frame payload too large (${payload.length})`);
  const h = Buffer.alloc(8);
  h.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([h, payload]);
}

function dataFrame(streamId: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(streamId & 0x7fffffff, 0);
  h.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([h, payload]);
}

function describeHeaders(h: HeaderMap | Readonly<Record<string, string>>): string {
  const pairs = h instanceof Map ? [...h].map(([k, v]) => `${k}=${v.join(',')}`) : Object.entries(h).map(([k, v]) => `${k}=${v}`);
  return `{${pairs.join(' ')}}`;
}

/**
 * Sends the upgrade request and reads the response head. Resolves on 101 with
 * the head and whatever bytes followed it (the server may start framing at
 * once); rejects with status line, hints and body otherwise.
 */
function readUpgradeResponse(socket: net.Socket, u: URL, protocols: readonly string[], timeoutMs: number): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    /** Set once a non-101 head is in: then the body is collected for the message. */
    let refused: { head: string; bodyStart: number; want: number } | undefined;
    let settled = false;
    const finish = (err: Error | undefined, value?: { head: string; rest: Buffer }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(value!);
    };
    const refusal = (): Error => {
      const r = refused!;
      const body = buf.subarray(r.bodyStart, r.bodyStart + Math.min(r.want, 8192)).toString('utf8').trim();
      const statusLine = r.head.split('\r\n')[0] ?? '';
      const accepted = [...r.head.matchAll(/\r\nx-accepted-stream-protocol-versions:\s*([^\r]*)/gi)].map((m) => m[1]).join(', ');
      return new Error(
        `spdy-client: ${u.host}${u.pathname} answered the SPDY/3.1 upgrade with "${statusLine}" instead of 101 Switching Protocols` +
          (accepted ? ` (server accepts protocols: ${accepted}; offered: ${protocols.join(', ')})` : '') +
          (body ? `: ${body}` : ''),
      );
    };
    const onError = (e: Error): void => finish(new Error(`spdy-client: connecting to ${u.host}: ${e.message}`));
    const onEnd = (): void => {
      if (refused) return finish(refusal());
      const text = buf.toString('latin1');
      finish(new Error(`spdy-client: ${u.host} closed the connection during the upgrade${text ? `; it sent: ${JSON.stringify(text.slice(0, 2000))}` : ''}`));
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (!refused) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buf.length > 64 * 1024) finish(new Error('spdy-client: upgrade response head exceeds 64 KiB'));
          return;
        }
        const head = buf.toString('latin1', 0, end);
        if (/^HTTP\/1\.[01] 101[ \r]/.test(`${head}\r`)) {
          finish(undefined, { head, rest: buf.subarray(end + 4) });
          return;
        }
        const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        refused = { head, bodyStart: end + 4, want: len ? Number(len[1]) : Infinity };
      }
      // Wait for the body (up to 8 KiB, or until the server closes) so the error says why.
      if (buf.length - refused.bodyStart >= Math.min(refused.want, 8192)) finish(refusal());
    };
    const timer = setTimeout(
      () => finish(refused ? refusal() : new Error(`spdy-client: no upgrade response from ${u.host} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.once('connect', () => {
      const lines = [
        `POST ${u.pathname}${u.search} HTTP/1.1`,
        `Host: ${u.host}`,
        'Connection: Upgrade',
        'Upgrade: SPDY/3.1',
        ...protocols.map((p) => `X-Stream-Protocol-Version: ${p}`),
        'Content-Length: 0',
        'User-Agent: cri-adapter-test-spdy-client',
      ];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
  });
}

// ---------------------------------------------------------------------------
// Streams and the connection

/** How a stream was reset. */
export interface StreamReset {
  status: number;
  statusName: string;
  /** True when the server sent the RST_STREAM. */
  byServer: boolean;
  /** True when it came before the server's SYN_REPLY, i.e. the server refused the stream. */
  beforeReply: boolean;
}

/** A client-initiated stream. Data the server sends is collected in memory. */
export class SpdyClientStream {
  replyHeaders: HeaderMap | undefined;
  /** Headers from HEADERS frames, merged. */
  readonly lateHeaders: HeaderMap = new Map();
  /** Server sent FIN (in a data frame, SYN_REPLY or HEADERS). */
  remoteFin = false;
  localFin = false;
  reset: StreamReset | undefined;
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private readonly listeners: Array<(chunk: Buffer) => void> = [];

  constructor(
    private readonly conn: SpdyClientConnection,
    readonly id: number,
    readonly headers: Readonly<Record<string, string>>,
  ) {}

  get replied(): boolean {
    return this.replyHeaders !== undefined;
  }

  /** The server will send nothing more (FIN or reset). */
  get remoteEnded(): boolean {
    return this.remoteFin || this.reset !== undefined;
  }

  get received(): number {
    return this.bytes;
  }

  /** Everything received so far. */
  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  onData(fn: (chunk: Buffer) => void): void {
    this.listeners.push(fn);
  }

  /** Sends data frames (split at 32 KiB). Resolves when handed to the socket. */
  async write(data: Buffer): Promise<void> {
    if (this.localFin) throw new Error(`stream ${this.id} (${this.label()}): write after FIN`);
    for (let off = 0; off < data.length; off += MAX_DATA_CHUNK) {
      const chunk = data.subarray(off, Math.min(data.length, off + MAX_DATA_CHUNK));
      await this.conn.sendData(this.id, 0, chunk);
    }
  }

  /** Half-closes the client side: an empty data frame with FIN. */
  async end(): Promise<void> {
    if (this.localFin) return;
    this.localFin = true;
    await this.conn.sendData(this.id, FLAG_FIN, Buffer.alloc(0));
  }

  /** Resets the stream (RST_STREAM, CANCEL unless told otherwise). */
  async resetStream(status = RST_CANCEL): Promise<void> {
    if (this.reset) return;
    this.reset = { status, statusName: RstStatus[status] ?? String(status), byServer: false, beforeReply: !this.replied };
    await this.conn.sendRst(this.id, status);
  }

  label(): string {
    return describeHeaders(this.headers);
  }

  /** Called by the connection for each inbound data frame. */
  pushData(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    for (const fn of this.listeners) fn(chunk);
  }
}

export interface ConnectOptions {
  /** Offered X-Stream-Protocol-Version values, in order of preference (one header line each). */
  protocols: readonly string[];
  timeoutMs?: number;
  /** Answer received data with WINDOW_UPDATE frames (kubectl does not; spdystream ignores them). Default false. */
  sendWindowUpdates?: boolean;
  /** Called with every frame sent or received. */
  trace?: (f: FrameRecord) => void;
}

interface Waiter {
  what: string;
  cond: () => boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A SPDY/3.1 client session over an HTTP/1.1 Upgrade, as the kubelet's streaming server expects it. */
export class SpdyClientConnection {
  /** X-Stream-Protocol-Version the server chose ('' when it sent none). */
  protocol = '';
  readonly responseHeaders: HeaderMap = new Map();
  readonly streams = new Map<number, SpdyClientStream>();
  /** Frames received, by type name: a cheap way to see what a server sends. */
  readonly received: Record<string, number> = {};
  goAway: { lastGoodStreamId: number; status: number } | undefined;
  /** The socket is gone (either side closed it, or it failed). */
  closed = false;
  /** Why the connection failed, when it did (protocol or socket error). */
  failure: Error | undefined;

  private nextStreamId = 1;
  private nextPingId = 1;
  private readonly pings = new Map<number, () => void>();
  private readonly deflate = ZlibContext.deflater();
  private readonly inflate = ZlibContext.inflater();
  private inBuf: Buffer = Buffer.alloc(0);
  /** Inbound frames are handled strictly in order; header inflation makes that asynchronous. */
  private inbound: Promise<void> = Promise.resolve();
  /** Outbound frames likewise: a SYN_STREAM must hit the wire before that stream's data. */
  private outbound: Promise<void> = Promise.resolve();
  private waiters: Waiter[] = [];

  private constructor(
    private readonly socket: Duplex,
    private readonly opts: ConnectOptions,
  ) {}

  /**
   * A session on a byte stream that is already upgraded (a SPDY tunnel in a
   * WebSocket, as client-go's port-forward dials it), with the protocol the
   * upgrade negotiated.
   */
  static over(stream: Duplex, protocol: string, opts: ConnectOptions): SpdyClientConnection {
    const conn = new SpdyClientConnection(stream, opts);
    conn.protocol = protocol;
    conn.attach(Buffer.alloc(0));
    return conn;
  }

  /**
   * Connects, sends the upgrade request and waits for 101. Rejects with the
   * status line and body on any other answer.
   */
  static async connect(url: string, opts: ConnectOptions): Promise<SpdyClientConnection> {
    const u = new URL(url);
    if (u.protocol !== 'http:') throw new Error(`spdy-client: only http:// URLs are supported, got ${url}`);
    const port = Number(u.port || 80);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const timeoutMs = opts.timeoutMs ?? 30_000;

    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const { head, rest } = await readUpgradeResponse(socket, u, opts.protocols, timeoutMs);

    const conn = new SpdyClientConnection(socket, opts);
    for (const line of head.split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const name = line.slice(0, i).trim().toLowerCase();
      conn.responseHeaders.set(name, [...(conn.responseHeaders.get(name) ?? []), line.slice(i + 1).trim()]);
    }
    const upgrade = conn.responseHeaders.get('upgrade')?.[0] ?? '';
    if (upgrade.toLowerCase() !== 'spdy/3.1') {
      socket.destroy();
      throw new Error(`spdy-client: 101 response upgrades to ${JSON.stringify(upgrade)}, not SPDY/3.1`);
    }
    conn.protocol = conn.responseHeaders.get('x-stream-protocol-version')?.[0] ?? '';
    if (conn.protocol !== '' && !opts.protocols.includes(conn.protocol)) {
      socket.destroy();
      throw new Error(`spdy-client: server chose protocol ${conn.protocol}, which was not offered (${opts.protocols.join(', ')})`);
    }
    conn.attach(rest);
    return conn;
  }

  private attach(rest: Buffer): void {
    this.socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    this.socket.on('error', (e: Error) => this.fail(new Error(`spdy-client: socket error: ${e.message}`)));
    this.socket.on('close', () => {
      // Let frames already parsed finish before waiters learn of the close.
      void this.inbound.then(() => {
        this.closed = true;
        this.check();
      });
    });
    if (rest.length > 0) this.onBytes(rest);
  }

  /** Opens a stream (SYN_STREAM). The id is assigned immediately; the frame is queued in order. */
  openStream(headers: Readonly<Record<string, string>>, opts: { fin?: boolean; priority?: number } = {}): SpdyClientStream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const s = new SpdyClientStream(this, id, headers);
    if (opts.fin) s.localFin = true;
    this.streams.set(id, s);
    const flags = opts.fin ? FLAG_FIN : 0;
    this.enqueue(async () => {
      const block = await this.deflate.process(encodeHeaderBlock(headers));
      const p = Buffer.alloc(10);
      p.writeUInt32BE(id & 0x7fffffff, 0);
      p.writeUInt32BE(0, 4); // associated-to stream: none
      p.writeUInt8(((opts.priority ?? 0) & 0x7) << 5, 8);
      p.writeUInt8(0, 9); // credential slot
      return { frame: controlFrame(FrameType.SYN_STREAM, flags, Buffer.concat([p, block])), rec: { type: 'SYN_STREAM', streamId: id, flags, info: describeHeaders(headers) } };
    }).catch((e: Error) => this.fail(e));
    return s;
  }

  sendData(streamId: number, flags: number, payload: Buffer): Promise<void> {
    return this.enqueue(async () => ({ frame: dataFrame(streamId, flags, payload), rec: { type: 'DATA', streamId, flags } }));
  }

  sendRst(streamId: number, status: number): Promise<void> {
    const p = Buffer.concat([u32(streamId & 0x7fffffff), u32(status)]);
    return this.enqueue(async () => ({ frame: controlFrame(FrameType.RST_STREAM, 0, p), rec: { type: 'RST_STREAM', streamId, flags: 0, info: RstStatus[status] } }));
  }

  /** Round trip of a client PING (odd id); resolves with the time in ms. */
  async ping(timeoutMs = 5_000): Promise<number> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    const t0 = Date.now();
    let answered = false;
    this.pings.set(id, () => {
      answered = true;
    });
    await this.enqueue(async () => ({ frame: controlFrame(FrameType.PING, 0, u32(id)), rec: { type: 'PING', streamId: 0, flags: 0, info: `id=${id}` } }));
    await this.waitFor(`PING ${id} reply`, () => answered, Date.now() + timeoutMs);
    return Date.now() - t0;
  }

  /** Sends GOAWAY (status OK) and ends the socket. Safe to call when already closed. */
  async close(): Promise<void> {
    if (!this.closed && !this.socket.destroyed && this.socket.writable) {
      let lastGood = 0;
      for (const id of this.streams.keys()) if (id % 2 === 0) lastGood = Math.max(lastGood, id);
      const p = Buffer.concat([u32(lastGood), u32(0)]);
      await this.enqueue(async () => ({ frame: controlFrame(FrameType.GOAWAY, 0, p), rec: { type: 'GOAWAY', streamId: 0, flags: 0 } })).catch(() => undefined);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1_000);
        const done = (): void => {
          clearTimeout(t);
          resolve();
        };
        this.socket.once('close', done);
        this.socket.end(done);
      });
    }
    this.destroy();
  }

  /** Drops the socket without goodbyes. */
  destroy(): void {
    this.socket.destroy();
    this.deflate.close();
    this.inflate.close();
    this.closed = true;
    this.check();
  }

  /**
   * Waits until cond() holds. Rejects when the connection fails, when it
   * closes with cond() still false, or at the deadline; `what` names the
   * awaited thing in those messages.
   */
  waitFor(what: string, cond: () => boolean, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        what,
        cond,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`spdy-client: timed out waiting for ${what}; ${this.describeState()}`));
        }, Math.max(0, deadline - Date.now())),
      };
      this.waiters.push(w);
      this.check();
    });
  }

  /** One line on where things stand, for error messages. */
  describeState(): string {
    const streams = [...this.streams.values()].map(
      (s) =>
        `#${s.id}${describeHeaders(s.headers)}: ${s.replied ? 'replied' : 'no reply'}, ${s.received} B in` +
        (s.remoteFin ? ', server FIN' : '') +
        (s.localFin ? ', client FIN' : '') +
        (s.reset ? `, reset ${s.reset.statusName} by ${s.reset.byServer ? 'server' : 'client'}` : ''),
    );
    const frames = Object.entries(this.received)
      .map(([k, v]) => `${k}x${v}`)
      .join(' ');
    return `streams [${streams.join('; ')}], frames in: ${frames || 'none'}` + (this.goAway ? ', GOAWAY received' : '') + (this.closed ? ', socket closed' : '');
  }

  private check(): void {
    for (const w of [...this.waiters]) {
      let done = false;
      let err: Error | undefined;
      try {
        done = w.cond();
      } catch (e) {
        err = e as Error;
      }
      if (!done && !err) {
        if (this.failure) err = new Error(`${this.failure.message} (while waiting for ${w.what})`);
        else if (this.closed) err = new Error(`spdy-client: connection closed before ${w.what}; ${this.describeState()}`);
      }
      if (!done && !err) continue;
      this.waiters = this.waiters.filter((x) => x !== w);
      clearTimeout(w.timer);
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.socket.destroy();
    this.closed = true;
    this.check();
  }

  private enqueue(make: () => Promise<{ frame: Buffer; rec: Omit<FrameRecord, 'dir' | 'length'> }>): Promise<void> {
    const job = this.outbound.then(async () => {
      if (this.socket.destroyed) throw new Error(`spdy-client: connection closed; cannot send. ${this.describeState()}`);
      const { frame, rec } = await make();
      this.opts.trace?.({ dir: 'out', length: frame.length - 8, ...rec });
      if (!this.socket.write(frame)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.socket.off('drain', done);
            this.socket.off('close', done);
            resolve();
          };
          this.socket.on('drain', done);
          this.socket.on('close', done);
        });
      }
    });
    this.outbound = job.catch(() => undefined);
    return job;
  }

  private onBytes(chunk: Buffer): void {
    this.inBuf = this.inBuf.length ? Buffer.concat([this.inBuf, chunk]) : chunk;
    while (this.inBuf.length >= 8) {
      const len = this.inBuf.readUInt32BE(4) & 0xffffff;
      if (this.inBuf.length < 8 + len) break;
      const frame = this.inBuf.subarray(0, 8 + len);
      this.inBuf = this.inBuf.subarray(8 + len);
      this.inbound = this.inbound
        .then(() => this.handleFrame(frame))
        .catch((e: Error) => this.fail(e instanceof Error ? e : new Error(String(e))))
        .finally(() => this.check());
    }
  }

  private count(type: string): void {
    this.received[type] = (this.received[type] ?? 0) + 1;
  }

  private stream(id: number, frameType: string): SpdyClientStream {
    const s = this.streams.get(id);
    if (!s) throw new Error(`spdy-client: ${frameType} for unknown stream ${id}; ${this.describeState()}`);
    return s;
  }

  private async handleFrame(f: Buffer): Promise<void> {
    const word = f.readUInt32BE(0);
    const flags = f.readUInt8(4);
    const payload = f.subarray(8);
    if ((word & 0x80000000) === 0) {
      const id = word & 0x7fffffff;
      this.count('DATA');
      this.opts.trace?.({ dir: 'in', type: 'DATA', streamId: id, flags, length: payload.length });
      const s = this.stream(id, 'DATA');
      if (s.reset) return; // late frames of a reset stream are dropped
      if (s.remoteFin) throw new Error(`spdy-client: DATA on stream ${id} after the server's FIN`);
      s.pushData(Buffer.from(payload));
      if (flags & FLAG_FIN) s.remoteFin = true;
      if (this.opts.sendWindowUpdates && payload.length > 0 && !s.remoteEnded) {
        const p = Buffer.concat([u32(id), u32(payload.length)]);
        void this.enqueue(async () => ({ frame: controlFrame(FrameType.WINDOW_UPDATE, 0, p), rec: { type: 'WINDOW_UPDATE', streamId: id, flags: 0 } })).catch(() => undefined);
      }
      return;
    }
    const version = (word >>> 16) & 0x7fff;
    const type = word & 0xffff;
    const name = FRAME_NAMES[type] ?? `type${type}`;
    this.count(name);
    if (version !== SPDY_VERSION) throw new Error(`spdy-client: server sent a SPDY/${version} ${name} frame`);
    const rec = (streamId: number, info?: string): void => this.opts.trace?.({ dir: 'in', type: name, streamId, flags, length: payload.length, info });
    switch (type) {
      case FrameType.SYN_REPLY:
      case FrameType.HEADERS: {
        if (payload.length < 4) throw new Error(`spdy-client: short ${name} frame`);
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const raw = await this.inflate.process(payload.subarray(4));
        if (raw.length > MAX_HEADER_BLOCK) throw new Error(`spdy-client: ${name} header block of ${raw.length} bytes`);
        const headers = decodeHeaderBlock(raw);
        rec(id, describeHeaders(headers));
        const s = this.stream(id, name);
        if (type === FrameType.SYN_REPLY) {
          if (s.replied) throw new Error(`spdy-client: second SYN_REPLY for stream ${id}`);
          s.replyHeaders = headers;
        } else {
          for (const [k, v] of headers) s.lateHeaders.set(k, [...(s.lateHeaders.get(k) ?? []), ...v]);
        }
        if (flags & FLAG_FIN) s.remoteFin = true;
        return;
      }
      case FrameType.SYN_STREAM: {
        // Server push is not something a CRI streaming server does; refuse it
        // (after inflating, so the shared compression state stays in step).
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.inflate.process(payload.subarray(10)));
        rec(id, describeHeaders(headers));
        await this.sendRst(id, 3 /* REFUSED_STREAM */);
        return;
      }
      case FrameType.RST_STREAM: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const status = payload.readUInt32BE(4);
        const statusName = RstStatus[status] ?? String(status);
        rec(id, statusName);
        const s = this.stream(id, name);
        s.reset ??= { status, statusName, byServer: true, beforeReply: !s.replied };
        return;
      }
      case FrameType.SETTINGS: {
        const n = payload.readUInt32BE(0);
        const entries: string[] = [];
        for (let i = 0; i < n; i++) {
          const idf = payload.readUInt32BE(4 + i * 8);
          entries.push(`${idf & 0xffffff}=${payload.readUInt32BE(8 + i * 8)}${idf >>> 24 ? `/flags${idf >>> 24}` : ''}`);
        }
        rec(0, entries.join(' '));
        return;
      }
      case FrameType.PING: {
        const id = payload.readUInt32BE(0);
        rec(0, `id=${id}`);
        if (id % 2 === 1) {
          this.pings.get(id)?.();
          this.pings.delete(id);
        } else {
          await this.enqueue(async () => ({ frame: controlFrame(FrameType.PING, 0, u32(id)), rec: { type: 'PING', streamId: 0, flags: 0, info: `id=${id} (answer)` } }));
        }
        return;
      }
      case FrameType.GOAWAY: {
        this.goAway = { lastGoodStreamId: payload.readUInt32BE(0) & 0x7fffffff, status: payload.length >= 8 ? payload.readUInt32BE(4) : 0 };
        rec(0, `last=${this.goAway.lastGoodStreamId} status=${this.goAway.status}`);
        return;
      }
      case FrameType.WINDOW_UPDATE: {
        rec(payload.readUInt32BE(0) & 0x7fffffff, `+${payload.readUInt32BE(4)}`);
        return;
      }
      default:
        // Unknown control frames are to be ignored (SPDY/3 2.2.1).
        rec(0);
        return;
    }
  }
}

/**
 * A reset the caller should hear about: the server refused the stream (RST
 * before SYN_REPLY) or gave a reason other than CANCEL. spdystream-based
 * servers tear every stream down with RST_STREAM CANCEL when the session
 * ends (after FIN or not), and the legacy v1 exec protocol cancels the error
 * stream right after setup; Go's client reads both as EOF, and so does this.
 */
function badReset(s: SpdyClientStream | undefined): string | undefined {
  const r = s?.reset;
  if (!s || !r || !r.byServer) return undefined;
  if (r.beforeReply) return `server refused stream ${s.id} ${s.label()} (RST_STREAM ${r.statusName} before any SYN_REPLY)`;
  if (r.status !== RST_CANCEL) return `server reset stream ${s.id} ${s.label()} with RST_STREAM ${r.statusName}`;
  return undefined;
}

// ---------------------------------------------------------------------------
// Kubernetes remotecommand (exec / attach)

export interface RemoteCommandOptions {
  stdin?: Buffer;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  /** Offered protocols, preferred first. Default: v4, v3, v2, v1 (channel.k8s.io). */
  protocols?: string[];
  timeoutMs?: number;
  /** With tty on v3+: a terminal size to send on the resize stream right away. */
  terminalSize?: { width: number; height: number };
  trace?: (f: FrameRecord) => void;
}

export interface RemoteCommandStatus {
  status?: string;
  reason?: string;
  message?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

export interface RemoteCommandResult {
  /** The negotiated X-Stream-Protocol-Version ('' if the server sent none, which means v1). */
  protocol: string;
  stdout: Buffer;
  stderr: Buffer;
  /** Raw text the server wrote on the error stream. */
  error: string;
  /** The error stream parsed as a metav1.Status (v4 only). */
  status?: RemoteCommandStatus;
  /**
   * v4: 0 for status Success, the ExitCode cause for a non-zero exit, -1 for
   * anything else (including no status at all). Before v4 the server only
   * writes on the error stream when something failed and never sends the exit
   * code: 0 when it wrote nothing, -1 when it wrote text.
   */
  exitCode: number;
}

function protocolVersion(p: string): number {
  const m = /^v(\d+)\.channel\.k8s\.io$/.exec(p);
  if (m) return Number(m[1]);
  if (p === 'channel.k8s.io' || p === '') return 1;
  throw new Error(`spdy-client: unknown remotecommand protocol ${JSON.stringify(p)}`);
}

/**
 * Runs an exec/attach session against a CRI streaming URL and collects
 * everything. The streams opened must match what the CRI request asked for
 * (the server counts them): stdin when opts.stdin is set, stdout/stderr as
 * flagged (stderr never with tty), resize with tty on v3+.
 */
export async function remoteCommand(url: string, opts: RemoteCommandOptions): Promise<RemoteCommandResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const protocols = opts.protocols ?? [...REMOTECOMMAND_PROTOCOLS];
  const conn = await SpdyClientConnection.connect(url, { protocols, timeoutMs, trace: opts.trace });
  try {
    const version = protocolVersion(conn.protocol);
    const tty = opts.tty ?? false;
    // Same order as kubectl: the error stream first, so a server failure during setup has somewhere to go.
    const errorS = conn.openStream({ streamtype: 'error' });
    const stdinS = opts.stdin ? conn.openStream({ streamtype: 'stdin' }) : undefined;
    const stdoutS = opts.stdout ? conn.openStream({ streamtype: 'stdout' }) : undefined;
    const stderrS = opts.stderr && !tty ? conn.openStream({ streamtype: 'stderr' }) : undefined;
    const resizeS = tty && version >= 3 ? conn.openStream({ streamtype: 'resize' }) : undefined;
    const outputs = [errorS, stdoutS, stderrS].filter((s): s is SpdyClientStream => s !== undefined);

    if (resizeS && opts.terminalSize) {
      void resizeS.write(Buffer.from(JSON.stringify({ Width: opts.terminalSize.width, Height: opts.terminalSize.height }))).catch(() => undefined);
    }
    let stdinError: Error | undefined;
    if (stdinS && opts.stdin) {
      const data = opts.stdin;
      // Not awaited: output must be drained while stdin is still going out.
      void (async () => {
        await stdinS.write(data);
        await stdinS.end();
      })().catch((e: Error) => {
        stdinError = e;
      });
    }

    const problem = (): string | undefined => {
      for (const s of [errorS, stdinS, stdoutS, stderrS, resizeS]) {
        const bad = badReset(s);
        if (bad) return bad;
      }
      return undefined;
    };
    await conn.waitFor(
      'the server to end the error/stdout/stderr streams',
      () => {
        const p = problem();
        if (p) throw new Error(`spdy-client: ${p}; ${conn.describeState()}`);
        // After the status the server closes the whole session; a socket
        // close after the error stream ended is the normal way out too.
        return outputs.every((s) => s.remoteEnded) || (conn.closed && errorS.remoteEnded);
      },
      deadline,
    ).catch((e: Error) => {
      throw stdinError ? new Error(`${e.message} (stdin write failed: ${stdinError.message})`) : e;
    });

    const error = errorS.data().toString('utf8');
    let status: RemoteCommandStatus | undefined;
    let exitCode: number;
    if (version >= 4) {
      if (error.trim() !== '') {
        try {
          status = JSON.parse(error) as RemoteCommandStatus;
        } catch (e) {
          throw new Error(`spdy-client: v4 error stream is not JSON (${(e as Error).message}): ${JSON.stringify(error)}`);
        }
      }
      const cause = status?.details?.causes?.find((c) => c.reason === 'ExitCode');
      if (status?.status === 'Success') exitCode = 0;
      else if (cause?.message !== undefined && /^-?\d+$/.test(cause.message)) exitCode = Number(cause.message);
      else exitCode = -1;
    } else {
      exitCode = error === '' ? 0 : -1;
    }
    return {
      protocol: conn.protocol,
      stdout: stdoutS?.data() ?? Buffer.alloc(0),
      stderr: stderrS?.data() ?? Buffer.alloc(0),
      error,
      status,
      exitCode,
    };
  } finally {
    await conn.close();
  }
}

// ---------------------------------------------------------------------------
// Kubernetes port-forward

export interface PortForwardOptions {
  timeoutMs?: number;
  /** Pairs the error and data streams; default "0". */
  requestId?: string;
  trace?: (f: FrameRecord) => void;
}

export interface PortForwardResult {
  /** Bytes the pod's port sent back. */
  data: Buffer;
  /** Text the server wrote on the error stream (e.g. it could not connect). */
  error: string;
}

/**
 * One forwarded TCP connection: sends payload, half-closes, and collects the
 * reply until the server ends the data stream.
 */
export async function portForward(url: string, port: number, payload: Buffer, opts: PortForwardOptions = {}): Promise<PortForwardResult> {
  const conn = await SpdyClientConnection.connect(url, { protocols: [PORTFORWARD_PROTOCOL], timeoutMs: opts.timeoutMs ?? 30_000, trace: opts.trace });
  return portForwardOn(conn, port, payload, opts);
}

/** portForward on a connection already made (closed when done). */
export async function portForwardOn(conn: SpdyClientConnection, port: number, payload: Buffer, opts: PortForwardOptions = {}): Promise<PortForwardResult> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  try {
    const requestid = opts.requestId ?? '0';
    const errorS = conn.openStream({ streamtype: 'error', port: String(port), requestid });
    const dataS = conn.openStream({ streamtype: 'data', port: String(port), requestid });
    // Only the client's side of the error stream is closed: it never writes there.
    void errorS.end().catch(() => undefined);
    let sendError: Error | undefined;
    void (async () => {
      if (payload.length > 0) await dataS.write(payload);
      await dataS.end();
    })().catch((e: Error) => {
      sendError = e;
    });

    await conn
      .waitFor(
        `the server to end the data stream for port ${port}`,
        () => {
          const bad = badReset(dataS) ?? badReset(errorS);
          if (bad) {
            const text = errorS.data().toString('utf8');
            throw new Error(`spdy-client: ${bad}${text ? `; error stream: ${text}` : ''}; ${conn.describeState()}`);
          }
          return dataS.remoteEnded && (errorS.remoteEnded || conn.closed);
        },
        deadline,
      )
      .catch((e: Error) => {
        const text = errorS.data().toString('utf8');
        const extra = [text ? `error stream: ${text}` : '', sendError ? `send failed: ${sendError.message}` : ''].filter((x) => x).join('; ');
        throw extra ? new Error(`${e.message} (${extra})`) : e;
      });
    return { data: dataS.data(), error: errorS.data().toString('utf8') };
  } finally {
    await conn.close();
  }
}
