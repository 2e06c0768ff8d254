/**
 * The streaming server behind Exec, Attach and PortForward. The CRI calls
 * only hand out a URL; the kubelet (proxying kubectl) or crictl then
 * connects to it and upgrades the HTTP connection to SPDY/3.1.
 *
 * Each URL carries a random single-use token that stands for the CRI request
 * it was made for, valid for a minute (as the kubelet's own streaming server
 * does): the request's flags, not the client's, decide what runs.
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../log/logger';
import { SpdySession } from './spdy/session';

export interface ExecStreamRequest {
  kind: 'exec';
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface AttachStreamRequest {
  kind: 'attach';
  containerId: string;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface PortForwardStreamRequest {
  kind: 'portforward';
  podSandboxId: string;
}

export type StreamRequest = ExecStreamRequest | AttachStreamRequest | PortForwardStreamRequest;

/** Runs an upgraded connection to its end for one request and the negotiated protocol. */
export type SessionHandler = (request: StreamRequest, session: SpdySession, protocol: string) => Promise<void>;

/** Remote command protocols we speak, newest first (the client lists the ones it speaks). */
export const REMOTE_COMMAND_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
export const PORT_FORWARD_PROTOCOLS = ['portforward.k8s.io'];

const TOKEN_TTL_MS = 60_000;

interface PendingRequest {
  request: StreamRequest;
  expires: number;
}

export interface StreamingServerOptions {
  address: string;
  port: number;
  logger: Logger;
  handle: SessionHandler;
}

export class StreamingServer {
  private readonly server: http.Server;
  private readonly pending = new Map<string, PendingRequest>();
  private readonly sessions = new Set<SpdySession>();
  /** Handlers still running (an exec being killed and cleaned up), for stop() to wait on. */
  private readonly running = new Set<Promise<void>>();
  private baseUrl = '';

  constructor(private readonly opts: StreamingServerOptions) {
    this.server = http.createServer((req, res) => {
      // Only upgrades are served; a plain request gets the reason.
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('this is the cri-adapter streaming server: connect with Upgrade: SPDY/3.1\n');
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const { address, port } = this.server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    this.baseUrl = `http://${host}:${port}`;
    this.opts.logger.info('streaming server listening', { url: this.baseUrl });
  }

  /**
   * Closes every session (their processes are killed) and waits, at most
   * `graceMs`, for the handlers to finish cleaning up while containerd is
   * still reachable: an exec left behind would run on in the container.
   */
  async stop(graceMs = 5000): Promise<void> {
    for (const s of this.sessions) s.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A URL for one use of `request`. */
  urlFor(request: StreamRequest): string {
    const now = Date.now();
    for (const [token, p] of this.pending) if (p.expires <= now) this.pending.delete(token);
    const token = randomBytes(12).toString('base64url');
    this.pending.set(token, { request, expires: now + TOKEN_TTL_MS });
    return `${this.baseUrl}/${request.kind}/${token}`;
  }

  private onUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): void {
    const refuse = (code: number, reason: string, message: string) => {
      socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${message}\n`);
    };
    const match = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/.exec((req.url ?? '').split('?')[0]!);
    const pending = match ? this.pending.get(match[2]!) : undefined;
    if (!match || !pending || pending.request.kind !== match[1] || pending.expires <= Date.now()) {
      refuse(404, 'Not Found', 'unknown or expired streaming URL: ask the runtime for a new one');
      return;
    }
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'spdy/3.1') {
      refuse(400, 'Bad Request', `unsupported upgrade "${req.headers.upgrade ?? ''}": this server speaks SPDY/3.1`);
      return;
    }
    const ours = pending.request.kind === 'portforward' ? PORT_FORWARD_PROTOCOLS : REMOTE_COMMAND_PROTOCOLS;
    const offered = protocolsOffered(req);
    // A client that names no protocol is an old one: it speaks the first version.
    const protocol = offered.length === 0 ? ours[ours.length - 1]! : ours.find((p) => offered.includes(p));
    if (!protocol) {
      refuse(403, 'Forbidden', `unable to upgrade: none of the offered protocols ${offered.join(', ')} is supported (${ours.join(', ')})`);
      return;
    }
    this.pending.delete(match[2]!);
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
    );
    const session = new SpdySession(socket, head);
    this.sessions.add(session);
    session.on('stream', (s) => this.opts.logger.debug('streaming: client opened a stream', { id: s.id, headers: s.headers }));
    session.on('close', (err) => {
      this.sessions.delete(session);
      if (err) this.opts.logger.debug('streaming connection failed', { error: err.message });
    });
    const request = pending.request;
    const ids = request.kind === 'portforward' ? { podSandboxId: request.podSandboxId } : { containerId: request.containerId };
    const run = this.opts
      .handle(request, session, protocol)
      .catch((err: unknown) => {
        this.opts.logger.warn(`streaming ${request.kind} failed`, { ...ids, error: (err as Error).message });
      })
      .finally(() => {
        session.close();
        this.running.delete(run);
      });
    this.running.add(run);
  }
}

/** X-Stream-Protocol-Version may be repeated and may hold comma-separated lists. */
function protocolsOffered(req: http.IncomingMessage): string[] {
  const out: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== 'x-stream-protocol-version') continue;
    for (const p of req.rawHeaders[i + 1]!.split(',')) if (p.trim()) out.push(p.trim());
  }
  return out;
}
