/**
 * The streaming server behind Exec, Attach and PortForward. The CRI calls
 * only hand out a URL; the kubelet (proxying kubectl) or crictl then
 * connects to it and upgrades the HTTP connection to SPDY/3.1 or to a
 * WebSocket (Kubernetes' channel protocols, or client-go's SPDY tunnel for
 * port-forward).
 *
 * Each URL carries a random single-use token that stands for the CRI request
 * it was made for, valid for a minute (as the kubelet's own streaming server
 * does): the request's flags, not the client's, decide what runs.
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../log/logger';
import { streamingMetrics } from '../metrics';
import type { StreamConnection } from './remote-command';
import { SpdySession } from './spdy/session';
import { WebSocketByteStream } from './websocket/byte-stream';
import { codecFor, WebSocketChannels } from './websocket/channels';

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
  /** The CRI request's ports: what a WebSocket client without `?port=` gets. */
  ports: number[];
}

export type StreamRequest = ExecStreamRequest | AttachStreamRequest | PortForwardStreamRequest;

/**
 * An upgraded connection: a SPDY session (over TCP, or tunnelled through a
 * WebSocket), or a WebSocket carrying numbered channels; with the
 * negotiated protocol (for the tunnel, the SPDY protocol inside it).
 */
export type StreamTransport =
  | { kind: 'spdy'; session: SpdySession; protocol: string }
  | { kind: 'websocket'; channels: WebSocketChannels; protocol: string; ports: number[] };

/** Runs an upgraded connection to its end for one request. */
export type SessionHandler = (request: StreamRequest, transport: StreamTransport) => Promise<void>;

/** Remote command protocols we speak over SPDY, newest first (the client lists the ones it speaks). */
export const REMOTE_COMMAND_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
export const PORT_FORWARD_PROTOCOLS = ['portforward.k8s.io'];
/** WebSocket subprotocols for exec and attach ('' = the client named none: binary, text errors). */
export const WS_REMOTE_COMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io'];
/** client-go's SPDY-in-WebSocket port-forward: the prefix, then the SPDY protocol. */
const SPDY_TUNNEL_PREFIX = 'SPDY/3.1+';
/** WebSocket subprotocols for port-forward. */
export const WS_PORT_FORWARD_PROTOCOLS = [`${SPDY_TUNNEL_PREFIX}portforward.k8s.io`, 'v4.channel.k8s.io', 'v4.base64.channel.k8s.io'];
/**
 * Largest WebSocket message taken from a client (stdin chunks and tunnelled
 * SPDY frames are far smaller; Go's clients write at most 32 KiB at a time):
 * a bigger one closes the connection (1009) instead of being buffered.
 */
const WS_MAX_MESSAGE = 4 * 1024 * 1024;
/** A WebSocket port-forward carries two channels per port, numbered in one byte. */
const WS_MAX_PORTS = 127;
/** Offered protocol lists and header values are cut to this length in messages. */
const ECHO_MAX = 200;

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
  private readonly sessions = new Set<StreamConnection>();
  private readonly wsServer: WebSocketServer;
  /** Handlers still running (an exec being killed and cleaned up), for stop() to wait on. */
  private readonly running = new Set<Promise<void>>();
  private baseUrl = '';

  constructor(private readonly opts: StreamingServerOptions) {
    this.server = http.createServer((req, res) => {
      // Only upgrades are served; a plain request gets the reason.
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('this is the cri-adapter streaming server: connect with Upgrade: SPDY/3.1 or Upgrade: websocket\n');
    });
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (_err, socket) => socket.destroy());
    // The protocol is chosen before the handshake (see onWebSocket); ws only writes it into the answer.
    this.wsServer = new WebSocketServer({
      noServer: true,
      maxPayload: WS_MAX_MESSAGE,
      perMessageDeflate: false,
      handleProtocols: (_offered, req) => chosenProtocol.get(req) || false,
    });
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
    const token = match?.[2];
    const pending = token ? this.pending.get(token) : undefined;
    if (!match || !token || !pending || pending.request.kind !== match[1] || pending.expires <= Date.now()) {
      refuse(404, 'Not Found', 'unknown or expired streaming URL: ask the runtime for a new one');
      return;
    }
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') {
      this.onWebSocket(req, socket, head, token, pending.request, refuse);
      return;
    }
    if (upgrade !== 'spdy/3.1') {
      refuse(400, 'Bad Request', `unsupported upgrade "${bounded(req.headers.upgrade ?? '')}": this server speaks SPDY/3.1 and websocket`);
      return;
    }
    const ours = pending.request.kind === 'portforward' ? PORT_FORWARD_PROTOCOLS : REMOTE_COMMAND_PROTOCOLS;
    const offered = protocolsOffered(req);
    // A client that names no protocol is an old one: it speaks the first version.
    const protocol = offered.length === 0 ? ours[ours.length - 1]! : ours.find((p) => offered.includes(p));
    if (!protocol) {
      refuse(403, 'Forbidden', `unable to upgrade: none of the offered protocols ${bounded(offered.join(', '))} is supported (${ours.join(', ')})`);
      return;
    }
    this.pending.delete(token);
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
    );
    this.serve(pending.request, { kind: 'spdy', session: this.spdySession(socket, head), protocol });
  }

  /**
   * A WebSocket upgrade. The subprotocol is picked here, in the client's
   * order of preference as upstream's handshake does: ws would refuse
   * client-go's `SPDY/3.1+portforward.k8s.io` outright (a '/' is not allowed
   * in an RFC 6455 token), so it is handed a protocol header it can parse
   * and told what to answer.
   */
  private onWebSocket(
    req: http.IncomingMessage,
    socket: Socket,
    head: Buffer,
    token: string,
    request: StreamRequest,
    refuse: (code: number, reason: string, message: string) => void,
  ): void {
    const ours = request.kind === 'portforward' ? WS_PORT_FORWARD_PROTOCOLS : WS_REMOTE_COMMAND_PROTOCOLS;
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    const protocol = offered.length === 0 ? '' : offered.find((p) => ours.includes(p));
    if (protocol === undefined) {
      refuse(403, 'Forbidden', `unable to upgrade: none of the offered subprotocols ${bounded(offered.join(', '))} is supported (${ours.join(', ')})`);
      return;
    }
    const tunnel = protocol.startsWith(SPDY_TUNNEL_PREFIX);
    let ports: number[] = [];
    if (request.kind === 'portforward' && !tunnel) {
      const parsed = webSocketPorts(req.url ?? '', request.ports);
      if (typeof parsed === 'string') {
        refuse(400, 'Bad Request', parsed);
        return;
      }
      ports = parsed;
    }
    if (protocol) {
      req.headers['sec-websocket-protocol'] = 'k8s';
      chosenProtocol.set(req, protocol);
    }
    this.pending.delete(token);
    this.wsServer.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      if (tunnel) {
        const session = this.spdySession(new WebSocketByteStream(ws), Buffer.alloc(0));
        this.serve(request, { kind: 'spdy', session, protocol: protocol.slice(SPDY_TUNNEL_PREFIX.length) });
        return;
      }
      const channels = new WebSocketChannels(ws, codecFor(protocol));
      this.track(channels);
      this.serve(request, { kind: 'websocket', channels, protocol, ports });
    });
  }

  private spdySession(transport: Socket | WebSocketByteStream, head: Buffer): SpdySession {
    const session = new SpdySession(transport, head);
    session.on('stream', (s) => this.opts.logger.debug('streaming: client opened a stream', { id: s.id, headers: s.headers }));
    this.track(session);
    return session;
  }

  /** Remembers an open connection until it closes, for stop() to close. */
  private track(conn: SpdySession | WebSocketChannels): void {
    this.sessions.add(conn);
    conn.once('close', (err?: Error) => {
      this.sessions.delete(conn);
      if (err) this.opts.logger.debug('streaming connection failed', { error: err.message });
    });
  }

  private serve(request: StreamRequest, transport: StreamTransport): void {
    const conn = transport.kind === 'spdy' ? transport.session : transport.channels;
    streamingMetrics.opened(request.kind);
    const ids = request.kind === 'portforward' ? { podSandboxId: request.podSandboxId } : { containerId: request.containerId };
    this.opts.logger.debug(`streaming ${request.kind} connected`, { ...ids, transport: transport.kind, protocol: transport.protocol });
    const run = this.opts
      .handle(request, transport)
      .catch((err: unknown) => {
        this.opts.logger.warn(`streaming ${request.kind} failed`, { ...ids, error: (err as Error).message });
      })
      .finally(() => {
        streamingMetrics.closed(request.kind);
        conn.close();
        this.running.delete(run);
      });
    this.running.add(run);
  }
}

/** The protocol picked for a WebSocket request, for ws's handshake to answer with. */
const chosenProtocol = new WeakMap<http.IncomingMessage, string>();

function bounded(text: string): string {
  return text.length > ECHO_MAX ? `${text.slice(0, ECHO_MAX)}...` : text;
}

/**
 * The ports of a WebSocket port-forward: `?port=` (repeated or
 * comma-separated, as the kubelet reads it), else the CRI request's; a
 * message when they are unusable.
 */
export function webSocketPorts(url: string, requested: number[]): number[] | string {
  const query = new URL(url, 'http://localhost').searchParams.getAll('port');
  const texts = query.flatMap((q) => q.split(','));
  if (texts.length > WS_MAX_PORTS || requested.length > WS_MAX_PORTS) return `a WebSocket port-forward carries at most ${WS_MAX_PORTS} ports`;
  if (texts.length === 0) {
    if (requested.length === 0) return 'no port to forward: add ?port=N to the URL or name ports in the PortForward request';
    return requested;
  }
  const ports: number[] = [];
  for (const t of texts) {
    const port = /^\d{1,5}$/.test(t) ? Number(t) : NaN;
    if (!(port >= 1 && port <= 65535)) return `unable to parse "${bounded(t)}" as a port`;
    ports.push(port);
  }
  return ports;
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
