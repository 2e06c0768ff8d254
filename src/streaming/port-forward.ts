/**
 * Kubernetes' port-forward protocols:
 * - portforward.k8s.io over a SPDY session (on TCP, or tunnelled through a
 *   WebSocket by client-go): for every TCP connection the client opens an
 *   error stream and a data stream with the same `requestid` header and the
 *   pod's `port`; bytes on the data stream are the connection's, both ways,
 *   and a failure is reported as text on the error stream.
 * - v4.channel.k8s.io over a WebSocket: one connection per port, made at
 *   once, on channels 2i (data) and 2i+1 (error); each channel's first
 *   message is the port as 2 bytes little-endian. The WebSocket closes once
 *   every connection has ended.
 *
 * The connection is made from inside the pod's network namespace by a
 * helper process (netns-dial.js under nsenter, one per pod, see
 * NetnsDialer); a pod on the host network is reached directly.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import type { SpdySession, SpdyStream } from './spdy/session';
import type { WebSocketChannels } from './websocket/channels';

/** The two streams of one forwarded connection, as they arrive. */
interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
}

/** Opens a connection to `port` as seen from the pod; the Duplex is the connection. */
export type Dialer = (port: number, onError: (message: string) => void) => Duplex;

/** How long an unused namespace helper is kept for the next connection. */
const HELPER_IDLE_MS = 30_000;

/**
 * Connections from inside one network namespace, through one helper process
 * per namespace (netns-dial.js under nsenter) that hands connected sockets
 * back over IPC: starting a process per connection cost ~130 ms, a message
 * to a running helper well under one.
 */
export class NetnsDialer {
  private child: ChildProcess | null = null;
  private readonly waiting = new Map<number, { resolve: (s: net.Socket) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(private readonly netnsPath: string) {}

  connect(port: number): Promise<net.Socket> {
    const child = this.helper();
    const id = this.nextId++;
    this.touch();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      child.send({ id, port }, (err) => {
        if (err) this.settle(id, new Error(`port-forward helper: ${err.message}`));
      });
    });
  }

  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.child?.kill('SIGKILL');
    this.child = null;
  }

  private helper(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn('nsenter', [`--net=${this.netnsPath}`, '--', process.execPath, path.join(__dirname, 'netns-dial.js')], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    child.on('message', (m: { id: number; error?: string }, handle: unknown) => {
      if (m.error !== undefined) this.settle(m.id, new Error(m.error));
      else if (handle instanceof net.Socket) this.settle(m.id, handle);
      else this.settle(m.id, new Error('port-forward helper answered without a connection'));
    });
    const gone = (why: string) => {
      if (this.child === child) this.child = null;
      for (const id of [...this.waiting.keys()]) this.settle(id, new Error(`port-forward helper ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
    };
    child.on('error', (err) => gone(`could not start (nsenter): ${err.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    this.child = child;
    return child;
  }

  private settle(id: number, result: net.Socket | Error): void {
    const w = this.waiting.get(id);
    if (!w) {
      if (result instanceof net.Socket) result.destroy();
      return;
    }
    this.waiting.delete(id);
    if (result instanceof Error) w.reject(result);
    else w.resolve(result);
  }

  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.waiting.size === 0) this.close();
      else this.touch();
    }, HELPER_IDLE_MS);
    this.idleTimer.unref();
  }
}

/** A dialer for a pod: through its namespace's helper, or directly for a pod on the host network. */
export function podDialer(helper: NetnsDialer | undefined): Dialer {
  return (port, onError) => {
    if (!helper) {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.on('error', (err) => onError(`failed to connect to localhost:${port}: ${err.message}`));
      return socket;
    }
    // The connection exists only once the helper answers; until then writes wait in this Duplex.
    const conn = new PendingConnection();
    helper.connect(port).then(
      (socket) => conn.attach(socket),
      (err: Error) => {
        onError(err.message);
        conn.push(null);
      },
    );
    return conn;
  };
}

/** A Duplex that stands for a socket still being connected, then passes everything through to it. */
class PendingConnection extends Duplex {
  private socket: net.Socket | null = null;
  private queued: Array<{ chunk: Buffer; cb: (err?: Error | null) => void }> = [];
  private endWanted = false;

  constructor() {
    super({ allowHalfOpen: true });
  }

  attach(socket: net.Socket): void {
    if (this.destroyed) {
      socket.destroy();
      return;
    }
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      if (!this.push(c)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    for (const q of this.queued) socket.write(q.chunk, q.cb);
    this.queued = [];
    if (this.endWanted) socket.end();
    socket.resume();
  }

  override _read(): void {
    this.socket?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket) this.socket.write(chunk, cb);
    else this.queued.push({ chunk, cb });
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.socket) this.socket.end();
    else this.endWanted = true;
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket?.destroy();
    for (const q of this.queued) q.cb(err ?? new Error('connection closed'));
    this.queued = [];
    cb(err);
  }
}

/** Serves one port-forward session until the client closes it. */
export function servePortForward(session: SpdySession, dial: Dialer): Promise<void> {
  const pairs = new Map<string, Pair>();
  return new Promise<void>((resolve) => {
    session.on('close', () => resolve());
    session.on('stream', (stream) => {
      const type = stream.headers.streamtype;
      const id = stream.headers.requestid ?? '';
      const port = Number(stream.headers.port);
      stream.on('error', () => undefined);
      if ((type !== 'error' && type !== 'data') || !Number.isInteger(port) || port < 1 || port > 65535) {
        stream.reset();
        return;
      }
      const pair = pairs.get(id) ?? {};
      if (pair[type]) {
        stream.reset();
        return;
      }
      pair[type] = stream;
      pairs.set(id, pair);
      if (pair.error && pair.data) {
        pairs.delete(id);
        void forward(port, pair.error, pair.data, dial);
      }
    });
  });
}

/** Serves a WebSocket port-forward: one connection per port, until all have ended or the client leaves. */
export async function serveWebSocketPortForward(conn: WebSocketChannels, ports: number[], dial: Dialer): Promise<void> {
  const done = ports.map((port, i) => {
    const data = conn.open(2 * i, true);
    const error = conn.open(2 * i + 1, false);
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16LE(port);
    data.write(prefix);
    error.write(prefix);
    return forward(port, error, data, dial);
  });
  const gone = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  await Promise.race([Promise.all(done), gone]);
}

/** Joins one connection to `port` with the client's data stream; resolves when the connection is over. */
function forward(port: number, error: Duplex, data: Duplex, dial: Dialer): Promise<void> {
  let failed = false;
  let over: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (over = resolve));
  const conn = dial(port, (message) => {
    if (failed) return;
    failed = true;
    if (!error.destroyed && !error.writableEnded) error.end(Buffer.from(message));
    // The client waits for both streams to end; FIN the data stream rather than drop it.
    data.unpipe(conn);
    if (!data.destroyed && !data.writableEnded) data.end();
    over();
  });
  conn.on('error', () => undefined);
  data.pipe(conn);
  conn.pipe(data);
  // The client's reset or a closed session ends the connection too.
  data.on('close', () => conn.destroy());
  conn.on('close', () => {
    if (!failed && !error.destroyed && !error.writableEnded) error.end();
    over();
  });
  return finished;
}
