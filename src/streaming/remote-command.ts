/**
 * Kubernetes' remote command protocol (exec and attach): the command's
 * channels (stdin, stdout, stderr, error, resize) over one connection; the
 * server runs the command with the channels the request asked for and
 * reports how it ended on the error channel.
 *
 * Transports:
 * - SPDY: the client opens one stream per channel, naming it in the
 *   `streamtype` header; the server waits for the ones the request implies.
 * - WebSocket: channels are numbered (stdin 0, stdout 1, stderr 2, error 3,
 *   resize 4) and exist from the start; see websocket/channels.ts.
 *
 * Versions: channel.k8s.io (v1), v2 and the pre-v4 WebSocket protocols
 * report only failures, as text; v3 adds the resize channel for terminals;
 * v4 (and v5, v4.base64 over WebSocket) report a JSON metav1.Status,
 * carrying a non-zero exit code as a cause, which is how `kubectl exec`
 * exits with the command's code; v5 lets the client close stdin.
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import { CancelledError } from '../errors';
import type { SpdySession, SpdyStream } from './spdy/session';
import type { WebSocketChannels } from './websocket/channels';

export interface TerminalSize {
  width: number;
  height: number;
}

/** The channels a command runs with, as the request asked for them. */
export interface RemoteCommandStreams {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  /** Terminal size changes (v3+ with a tty). */
  onResize(listener: (size: TerminalSize) => void): void;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
}

/** How the command ended: an exit code, or an error that kept it from running. */
export type RemoteCommandResult = { exitCode: number; message?: string } | { error: string };

export interface RemoteCommandOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
  /** For the status message, as Kubernetes words it. */
  describe: string;
}

/** A command's channels as the transport carries them (each Duplex: client → us readable, us → client writable). */
export interface RemoteCommandChannels {
  stdin?: Duplex;
  stdout?: Duplex;
  stderr?: Duplex;
  error: Duplex;
  resize?: Duplex;
}

/** The connection under the channels: closing it is how the session ends. */
export interface StreamConnection {
  readonly isClosed: boolean;
  once(event: 'close', listener: (err?: Error) => void): unknown;
  off(event: 'close', listener: (err?: Error) => void): unknown;
  close(): void;
}

/** Protocols whose error channel carries a JSON metav1.Status rather than text. */
const STATUS_PROTOCOLS = new Set(['v4.channel.k8s.io', 'v5.channel.k8s.io', 'v4.base64.channel.k8s.io']);

/** The kubelet waits this long for the client to open its streams (its streamCreationTimeout). */
const STREAM_CREATION_TIMEOUT_MS = 30_000;

function expectedStreams(protocol: string, opts: RemoteCommandOptions): Set<string> {
  const want = new Set(['error']);
  if (opts.stdin) want.add('stdin');
  if (opts.stdout) want.add('stdout');
  if (opts.stderr && !opts.tty) want.add('stderr');
  if (opts.tty && (protocol === 'v3.channel.k8s.io' || protocol === 'v4.channel.k8s.io')) want.add('resize');
  return want;
}

/** Waits until every expected stream is open; others are refused. */
function collectStreams(session: SpdySession, want: Set<string>): Promise<Map<string, SpdyStream>> {
  return new Promise((resolve, reject) => {
    const got = new Map<string, SpdyStream>();
    const done = (err?: Error) => {
      clearTimeout(timer);
      session.off('stream', onStream);
      session.off('close', onClose);
      if (err) reject(err);
      else resolve(got);
    };
    const onStream = (stream: SpdyStream) => {
      const type = stream.headers.streamtype ?? '';
      if (!want.has(type) || got.has(type)) {
        stream.reset();
        return;
      }
      got.set(type, stream);
      if (got.size === want.size) done();
    };
    const onClose = () => done(new Error('the client closed the connection before opening its streams'));
    const timer = setTimeout(
      () => done(new Error(`timed out waiting for the client to open streams ${[...want].filter((t) => !got.has(t)).join(', ')}`)),
      STREAM_CREATION_TIMEOUT_MS,
    );
    session.on('stream', onStream);
    session.on('close', onClose);
  });
}

/** Parses the resize channel: a sequence of JSON objects {"Width":w,"Height":h}. */
export function resizeParser(listener: (size: TerminalSize) => void): (chunk: Buffer) => void {
  let text = '';
  return (chunk) => {
    text += chunk.toString('utf8');
    for (;;) {
      const end = text.indexOf('}');
      if (end < 0) break;
      const start = text.indexOf('{');
      const piece = text.slice(start < 0 || start > end ? 0 : start, end + 1);
      text = text.slice(end + 1);
      try {
        const size = JSON.parse(piece) as { Width?: unknown; Height?: unknown };
        if (typeof size.Width === 'number' && typeof size.Height === 'number') listener({ width: size.Width, height: size.Height });
      } catch {
        // Not a size: skip it, as the kubelet does.
      }
    }
    if (text.length > 4096) text = '';
  };
}

/** What goes on the error channel for `result` in `protocol`; '' for nothing. */
export function statusText(protocol: string, result: RemoteCommandResult, describe: string): string {
  if (!STATUS_PROTOCOLS.has(protocol)) {
    if ('error' in result) return result.error;
    if (result.exitCode === 0) return '';
    return `command terminated with non-zero exit code: error executing command ${describe}, exit code ${result.exitCode}`;
  }
  if ('error' in result) return JSON.stringify({ metadata: {}, status: 'Failure', message: result.error, reason: 'InternalError' });
  if (result.exitCode === 0) return JSON.stringify({ metadata: {}, status: 'Success' });
  return JSON.stringify({
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: ${result.message ?? `error executing command ${describe}, exit code ${result.exitCode}`}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(result.exitCode) }] },
  });
}

/** The channels of a SPDY session: waits for the client to open the streams the request implies. */
export async function spdyChannels(session: SpdySession, protocol: string, opts: RemoteCommandOptions): Promise<RemoteCommandChannels> {
  const streams = await collectStreams(session, expectedStreams(protocol, opts));
  return {
    stdin: streams.get('stdin'),
    stdout: streams.get('stdout'),
    stderr: streams.get('stderr'),
    error: streams.get('error')!,
    resize: streams.get('resize'),
  };
}

/** WebSocket channel numbers, as Kubernetes fixes them (the POSIX descriptors, then error and resize). */
const WS_STDIN = 0;
const WS_STDOUT = 1;
const WS_STDERR = 2;
const WS_ERROR = 3;
const WS_RESIZE = 4;

/**
 * The channels of a WebSocket connection: the ones the request asked for
 * (stderr is merged into a terminal), error always, resize with a terminal.
 * Like the kubelet, an empty message on the first output channel tells the
 * client the server is ready.
 */
export function webSocketChannels(conn: WebSocketChannels, opts: RemoteCommandOptions): RemoteCommandChannels {
  const channels: RemoteCommandChannels = {
    stdin: opts.stdin ? conn.open(WS_STDIN, true) : undefined,
    stdout: opts.stdout ? conn.open(WS_STDOUT, false) : undefined,
    stderr: opts.stderr && !opts.tty ? conn.open(WS_STDERR, false) : undefined,
    error: conn.open(WS_ERROR, false),
    resize: opts.tty ? conn.open(WS_RESIZE, true) : undefined,
  };
  const first = opts.stdout ? WS_STDOUT : opts.stderr && !opts.tty ? WS_STDERR : WS_ERROR;
  conn.send(first, Buffer.alloc(0), () => undefined);
  return channels;
}

/**
 * Serves one remote command session: runs `run` with the channels, writes
 * the outcome on the error channel and ends the channels (the caller then
 * closes the connection).
 */
export async function serveRemoteCommand(
  conn: StreamConnection,
  channels: RemoteCommandChannels,
  protocol: string,
  opts: RemoteCommandOptions,
  run: (streams: RemoteCommandStreams) => Promise<RemoteCommandResult>,
): Promise<void> {
  const gone = new AbortController();
  const onClose = () => gone.abort(new CancelledError('the client went away'));
  conn.once('close', onClose);
  if (conn.isClosed) onClose();
  const resizeListeners: Array<(size: TerminalSize) => void> = [];
  // A client sends its size at once, often before the process exists: the latest one is kept for it.
  let lastSize: TerminalSize | undefined;
  channels.resize?.on(
    'data',
    resizeParser((size) => {
      lastSize = size;
      resizeListeners.forEach((l) => l(size));
    }),
  );
  for (const s of Object.values(channels) as Array<Duplex | undefined>) s?.on('error', () => undefined);
  let result: RemoteCommandResult;
  try {
    result = await run({
      stdin: channels.stdin,
      stdout: channels.stdout,
      stderr: channels.stderr,
      onResize: (l) => {
        resizeListeners.push(l);
        if (lastSize) l(lastSize);
      },
      signal: gone.signal,
    });
  } catch (err) {
    result = { error: (err as Error).message };
  } finally {
    conn.off('close', onClose);
  }
  if (conn.isClosed) return;
  const end = (s: Duplex | undefined) =>
    new Promise<void>((resolve) => (s && !s.writableEnded && !s.destroyed ? s.end(() => resolve()) : resolve()));
  await Promise.all([end(channels.stdout), end(channels.stderr)]);
  const text = statusText(protocol, result, opts.describe);
  if (text) await new Promise<void>((resolve) => channels.error.write(Buffer.from(text), () => resolve()));
  await end(channels.error);
}
