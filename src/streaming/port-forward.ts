/**
 * Kubernetes' port-forward protocol (portforward.k8s.io) over a SPDY
 * session: for every TCP connection the client opens an error stream and a
 * data stream with the same `requestid` header and the pod's `port`; bytes
 * on the data stream are the connection's, both ways, and a failure is
 * reported as text on the error stream.
 *
 * The connection is made from inside the pod's network namespace by a
 * child process (netns-dial.js under nsenter); a pod on the host network
 * is reached directly.
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import type { SpdySession, SpdyStream } from './spdy/session';

export interface PortForwardTarget {
  /** The pod's network namespace, or undefined for a host-network pod. */
  netnsPath?: string;
}

interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
}

/** Opens a connection to `port` as seen from the pod; the Duplex is the connection. */
export type Dialer = (port: number, onError: (message: string) => void) => Duplex;

export function podDialer(target: PortForwardTarget): Dialer {
  return (port, onError) => {
    if (!target.netnsPath) {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.on('error', (err) => onError(`failed to connect to localhost:${port}: ${err.message}`));
      return socket;
    }
    const child = spawn('nsenter', [`--net=${target.netnsPath}`, '--', process.execPath, path.join(__dirname, 'netns-dial.js'), String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.on('error', () => undefined);
    const conn = new Duplex({
      allowHalfOpen: true,
      read() {
        child.stdout.resume();
      },
      write(chunk: Buffer, _enc, cb) {
        if (child.stdin.write(chunk)) cb();
        else child.stdin.once('drain', () => cb());
      },
      final(cb) {
        child.stdin.end();
        cb();
      },
      destroy(err, cb) {
        child.kill('SIGKILL');
        cb(err);
      },
    });
    child.stdout.on('data', (c: Buffer) => {
      if (!conn.push(c)) child.stdout.pause();
    });
    child.on('error', (err) => onError(`cannot run nsenter to reach the pod's network namespace: ${err.message}`));
    // 'close' comes after the child's stdio is drained, so the reason for a failure is complete;
    // it is reported before the connection ends.
    child.on('close', (code) => {
      if (code !== 0) onError(stderr.trim() || `port-forward helper exited with ${code}`);
      conn.push(null);
    });
    return conn;
  };
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
        forward(port, pair.error, pair.data, dial);
      }
    });
  });
}

function forward(port: number, error: SpdyStream, data: SpdyStream, dial: Dialer): void {
  let failed = false;
  const conn = dial(port, (message) => {
    if (failed) return;
    failed = true;
    if (!error.destroyed && !error.writableEnded) error.end(Buffer.from(message));
    // The client waits for both streams to end; FIN the data stream rather than drop it.
    data.unpipe(conn);
    if (!data.destroyed && !data.writableEnded) data.end();
  });
  conn.on('error', () => undefined);
  data.pipe(conn);
  conn.pipe(data);
  // The client's reset or a closed session ends the connection too.
  data.on('close', () => conn.destroy());
  conn.on('close', () => {
    if (!failed && !error.destroyed && !error.writableEnded) error.end();
  });
}
