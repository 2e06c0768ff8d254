/**
 * Kubernetes' remote command protocol (exec and attach) over a SPDY
 * session: the client opens one stream per channel, naming it in the
 * `streamtype` header; the server waits for the channels the request asked
 * for, runs the command, and reports how it ended on the error channel.
 *
 * Versions: channel.k8s.io (v1) and v2 report only failures, as text; v3
 * adds the resize channel for terminals; v4 reports a JSON metav1.Status,
 * carrying a non-zero exit code as a cause, which is how `kubectl exec`
 * exits with the command's code.
 */
import type { Readable, Writable } from 'node:stream';
import { CancelledError } from '../errors';
import type { SpdySession, SpdyStream } from './spdy/session';

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
  if (protocol !== 'v4.channel.k8s.io') {
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

/**
 * Serves one remote command session: collects the streams, runs `run`
 * with them, writes the outcome on the error stream and ends the streams.
 */
export async function serveRemoteCommand(
  session: SpdySession,
  protocol: string,
  opts: RemoteCommandOptions,
  run: (streams: RemoteCommandStreams) => Promise<RemoteCommandResult>,
): Promise<void> {
  const streams = await collectStreams(session, expectedStreams(protocol, opts));
  const gone = new AbortController();
  const onClose = () => gone.abort(new CancelledError('the client went away'));
  session.once('close', onClose);
  if (session.isClosed) onClose();
  const resizeListeners: Array<(size: TerminalSize) => void> = [];
  const resize = streams.get('resize');
  resize?.on('data', resizeParser((size) => resizeListeners.forEach((l) => l(size))));
  for (const s of streams.values()) s.on('error', () => undefined);
  let result: RemoteCommandResult;
  try {
    result = await run({
      stdin: streams.get('stdin'),
      stdout: streams.get('stdout'),
      stderr: streams.get('stderr'),
      onResize: (l) => resizeListeners.push(l),
      signal: gone.signal,
    });
  } catch (err) {
    result = { error: (err as Error).message };
  } finally {
    session.off('close', onClose);
  }
  if (session.isClosed) return;
  const end = (s: SpdyStream | undefined) =>
    new Promise<void>((resolve) => (s && !s.writableEnded && !s.destroyed ? s.end(() => resolve()) : resolve()));
  await Promise.all([end(streams.get('stdout')), end(streams.get('stderr'))]);
  const error = streams.get('error')!;
  const text = statusText(protocol, result, opts.describe);
  if (text) await new Promise<void>((resolve) => error.write(Buffer.from(text), () => resolve()));
  await end(error);
}
