/**
 * A WebSocket client for tests of a CRI streaming server, on `ws`: what
 * client-go (kubectl, crictl --transport websocket) and the Python client do,
 * written from the protocol descriptions and kept independent of the server
 * code under src/streaming/.
 *
 *   const r = await wsRemoteCommand(execUrl, { protocols: ['v5.channel.k8s.io'], stdin });
 *   // r.protocol, r.stdout, r.stderr, r.error, r.status, r.exitCode, r.closeCode
 *   const f = await wsPortForward(`${pfUrl}?port=8080`, [request]);
 *   // f.ports[i].data, f.ports[i].error
 *   const conn = await spdyTunnel(pfUrl); // a SpdyClientConnection inside the WebSocket
 *
 * Channel framing: binary messages [channel, ...bytes]; the base64 protocols
 * use text messages, the channel as '0'+n, then base64; v5 half-closes a
 * channel with [255, n].
 */
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocket } from 'ws';
import { SpdyClientConnection } from './spdy-client';

export const WS_STDIN = 0;
export const WS_STDOUT = 1;
export const WS_STDERR = 2;
export const WS_ERROR = 3;
export const WS_RESIZE = 4;
const STREAM_CLOSE = 255;
export const SPDY_TUNNEL_PROTOCOL = 'SPDY/3.1+portforward.k8s.io';

/** Stands in for the offered protocols while `ws` checks the handshake (it allows only RFC 7230 tokens, no '/'). */
const PLACEHOLDER = 'cri-adapter-test';

export interface OpenedWebSocket {
  ws: WebSocket;
  /** The subprotocol the server chose ('' for none). */
  protocol: string;
}

/**
 * Connects to a streaming URL (http:// becomes ws://) offering `protocols`
 * in one Sec-WebSocket-Protocol header, as client-go does. Rejects with the
 * status and body when the server does not upgrade, and when it picks a
 * protocol that was not offered.
 */
export function openWebSocket(
  url: string,
  protocols: readonly string[],
  timeoutMs = 10_000,
  onMessage?: (raw: Buffer, protocol: string) => void,
): Promise<OpenedWebSocket> {
  const u = new URL(url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return new Promise((resolve, reject) => {
    let chosen = '';
    const ws = new WebSocket(u, protocols.length > 0 ? [PLACEHOLDER] : [], {
      handshakeTimeout: timeoutMs,
      perMessageDeflate: false,
      finishRequest: (req) => {
        if (protocols.length > 0) {
          req.setHeader('Sec-WebSocket-Protocol', protocols.join(', '));
          // Runs before ws's own check: remember the real answer and show ws the placeholder it expects.
          req.prependListener('upgrade', (res) => {
            chosen = String(res.headers['sec-websocket-protocol'] ?? '');
            if (protocols.includes(chosen)) res.headers['sec-websocket-protocol'] = PLACEHOLDER;
          });
        }
        req.end();
      },
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body = (body + c.toString()).slice(0, 4000)));
      res.on('end', () => reject(new Error(`ws-client: ${url} answered ${res.statusCode} ${res.statusMessage ?? ''}: ${body.trim()}`)));
    });
    ws.once('error', (e) => reject(new Error(`ws-client: ${e.message}${chosen ? ` (server chose ${chosen})` : ''}`)));
    // Listening from the start: the server may send with its 101 answer, before 'open' resolves.
    if (onMessage) ws.on('message', (raw: Buffer) => onMessage(raw, chosen));
    ws.once('open', () => resolve({ ws, protocol: chosen }));
  });
}

/** Encodes one message on `channel` for the protocol's codec. */
export function channelMessage(protocol: string, channel: number, data: Buffer): Buffer | string {
  if (protocol.includes('base64.')) return String.fromCharCode(48 + channel) + data.toString('base64');
  return Buffer.concat([Buffer.from([channel]), data]);
}

/** Decodes a message into its channel and bytes. */
export function decodeChannelMessage(protocol: string, raw: Buffer): { channel: number; data: Buffer } {
  if (raw.length === 0) return { channel: -1, data: raw };
  if (protocol.includes('base64.')) return { channel: raw[0]! - 48, data: Buffer.from(raw.toString('latin1', 1), 'base64') };
  return { channel: raw[0]!, data: raw.subarray(1) };
}

/** Sends on channels, holding what is sent before the handshake has finished. */
function queuedSender(): { send(channel: number, data: Buffer): void; open(ws: WebSocket, protocol: string): void } {
  let target: { ws: WebSocket; protocol: string } | undefined;
  const queued: Array<[number, Buffer]> = [];
  const write = (t: { ws: WebSocket; protocol: string }, channel: number, data: Buffer) =>
    t.ws.send(channelMessage(t.protocol, channel, data), { binary: !t.protocol.includes('base64.') });
  return {
    send: (channel, data) => (target ? write(target, channel, data) : queued.push([channel, data])),
    open: (ws, protocol) => {
      target = { ws, protocol };
      for (const [c, d] of queued.splice(0)) write(target, c, d);
    },
  };
}

export interface WsRemoteCommandOptions {
  /** Offered subprotocols, preferred first. Default: v5, v4 (what kubectl 1.30+ offers is v5 alone). */
  protocols?: string[];
  /** Sent on channel 0 right away. */
  stdin?: Buffer;
  /** After stdin, half-close it with [255, 0] (v5 only). Default: true on v5. */
  closeStdin?: boolean;
  /** Sent on the resize channel, in order, before stdin. */
  terminalSizes?: Array<{ width: number; height: number }>;
  /** Called with every decoded message from the server; `send` writes on a channel. */
  onMessage?: (channel: number, data: Buffer, send: (channel: number, data: Buffer) => void) => void;
  timeoutMs?: number;
}

export interface WsRemoteCommandStatus {
  status?: string;
  reason?: string;
  message?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

export interface WsRemoteCommandResult {
  protocol: string;
  stdout: Buffer;
  stderr: Buffer;
  /** Text on the error channel. */
  error: string;
  /** The error channel parsed as a metav1.Status (v4 and v5). */
  status?: WsRemoteCommandStatus;
  /** v4/v5: from the status (0 Success, the ExitCode cause, -1 otherwise); before v4: 0 without error text, else -1. */
  exitCode: number;
  /** The server's WebSocket close code. */
  closeCode: number;
  /** Channels of the messages received, in order (-1 for an empty message). */
  channels: number[];
}

/** Runs an exec or attach session over a WebSocket and collects everything until the server closes. */
export async function wsRemoteCommand(url: string, opts: WsRemoteCommandOptions = {}): Promise<WsRemoteCommandResult> {
  const out: Record<number, Buffer[]> = {};
  const channels: number[] = [];
  const sender = queuedSender();
  const send = (channel: number, data: Buffer) => sender.send(channel, data);
  const { ws, protocol } = await openWebSocket(url, opts.protocols ?? ['v5.channel.k8s.io', 'v4.channel.k8s.io'], opts.timeoutMs, (raw, chosen) => {
    const { channel, data } = decodeChannelMessage(chosen, raw);
    channels.push(data.length === 0 ? -1 : channel);
    if (channel >= 0) (out[channel] ??= []).push(data);
    opts.onMessage?.(channel, data, send);
  });
  sender.open(ws, protocol);
  const closed = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`ws-client: the server did not close within ${opts.timeoutMs ?? 30_000} ms; got channels ${channels.join(',')}`));
    }, opts.timeoutMs ?? 30_000);
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  for (const size of opts.terminalSizes ?? []) send(WS_RESIZE, Buffer.from(JSON.stringify({ Width: size.width, Height: size.height })));
  if (opts.stdin) send(WS_STDIN, opts.stdin);
  if (opts.closeStdin ?? protocol === 'v5.channel.k8s.io') ws.send(Buffer.from([STREAM_CLOSE, WS_STDIN]));
  const closeCode = await closed;
  const get = (c: number) => Buffer.concat(out[c] ?? []);
  const error = get(WS_ERROR).toString('utf8');
  let status: WsRemoteCommandStatus | undefined;
  let exitCode: number;
  if (protocol.startsWith('v4.') || protocol.startsWith('v5.')) {
    status = error.trim() ? (JSON.parse(error) as WsRemoteCommandStatus) : undefined;
    const cause = status?.details?.causes?.find((c) => c.reason === 'ExitCode');
    exitCode = status?.status === 'Success' ? 0 : cause?.message !== undefined ? Number(cause.message) : -1;
  } else {
    exitCode = error === '' ? 0 : -1;
  }
  return { protocol, stdout: get(WS_STDOUT), stderr: get(WS_STDERR), error, status, exitCode, closeCode, channels };
}

export interface WsPortForwardResult {
  protocol: string;
  /** Per port, in URL order: the port each channel announced, what the pod sent, the error text. */
  ports: Array<{ dataPort: number; errorPort: number; data: Buffer; error: string }>;
  closeCode: number;
}

/**
 * A v4 WebSocket port-forward: the ports come from the URL (`?port=`) or the
 * CRI request; `payloads[i]` is written on port i's data channel once the
 * server has announced it. Collects until the server closes.
 */
export async function wsPortForward(
  url: string,
  payloads: Buffer[],
  opts: { protocols?: string[]; timeoutMs?: number } = {},
): Promise<WsPortForwardResult> {
  const seen = new Map<number, { port: number; chunks: Buffer[] }>();
  const sender = queuedSender();
  const { ws, protocol } = await openWebSocket(url, opts.protocols ?? ['v4.channel.k8s.io'], opts.timeoutMs, (raw, chosen) => {
    const { channel, data } = decodeChannelMessage(chosen, raw);
    if (channel < 0) return;
    let entry = seen.get(channel);
    if (!entry) {
      // Each channel's first two bytes are its port, little-endian.
      entry = { port: data.readUInt16LE(0), chunks: [data.subarray(2)] };
      seen.set(channel, entry);
      const payload = channel % 2 === 0 ? payloads[channel / 2] : undefined;
      if (payload) sender.send(channel, payload);
      return;
    }
    entry.chunks.push(data);
  });
  sender.open(ws, protocol);
  const closed = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`ws-client: port-forward not closed within ${opts.timeoutMs ?? 30_000} ms`));
    }, opts.timeoutMs ?? 30_000);
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  const closeCode = await closed;
  const ports: WsPortForwardResult['ports'] = [];
  for (let i = 0; seen.has(2 * i); i++) {
    const d = seen.get(2 * i)!;
    const e = seen.get(2 * i + 1);
    ports.push({ dataPort: d.port, errorPort: e?.port ?? -1, data: Buffer.concat(d.chunks), error: Buffer.concat(e?.chunks ?? []).toString('utf8') });
  }
  return { protocol, ports, closeCode };
}

/** client-go's port-forward over WebSocket: a SPDY session tunnelled through binary messages. */
export async function spdyTunnel(url: string, timeoutMs = 10_000): Promise<SpdyClientConnection & { websocket: WebSocket }> {
  const { ws, protocol } = await openWebSocket(url, [SPDY_TUNNEL_PROTOCOL], timeoutMs);
  if (protocol !== SPDY_TUNNEL_PROTOCOL) throw new Error(`ws-client: server chose ${JSON.stringify(protocol)} for the SPDY tunnel`);
  const stream: Duplex = createWebSocketStream(ws);
  const conn = SpdyClientConnection.over(stream, 'portforward.k8s.io', { protocols: ['portforward.k8s.io'], timeoutMs });
  return Object.assign(conn, { websocket: ws });
}
