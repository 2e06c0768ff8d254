/**
 * Streaming Attach: a client joins a running container's own stdio. It sees
 * the output from the moment it attaches (what the log writer takes in, in
 * the same order), may write to the container's stdin, and may resize its
 * terminal. Detaching leaves the container alone; with stdin_once, the
 * first client to close stdin closes it for the container too.
 */
import type { ContainerRecord } from '../container/model';
import type { ContainerAttachment } from '../container/service';
import type { RemoteCommandResult, RemoteCommandStreams } from './remote-command';

/**
 * A client that falls this far behind is cut off: the container's output
 * cannot wait for it (the log comes first), and buffering without a bound
 * would let one stalled kubectl exhaust the daemon's memory.
 */
const MAX_CLIENT_BACKLOG = 8 * 1024 * 1024;

export async function runAttach(
  record: ContainerRecord,
  attachment: ContainerAttachment,
  streams: RemoteCommandStreams,
): Promise<RemoteCommandResult> {
  const { io } = attachment;
  const tooSlow = new AbortController();
  const unsubscribe = io.onOutput((stream, chunk) => {
    // A terminal has one stream; without one, each goes where the client asked for it (or nowhere).
    const target = record.config.tty || stream === 'stdout' ? streams.stdout : streams.stderr;
    if (!target || target.destroyed) return;
    if (target.writableLength > MAX_CLIENT_BACKLOG) {
      tooSlow.abort();
      return;
    }
    target.write(chunk);
  });
  const { stdin } = streams;
  if (stdin && io.stdin) {
    const containerStdin = io.stdin;
    const forward = (chunk: Buffer) => containerStdin.write(chunk);
    stdin.on('data', forward);
    stdin.once('end', () => {
      stdin.off('data', forward);
      if (record.config.stdinOnce) {
        containerStdin.end();
        void attachment.closeStdin().catch(() => undefined);
      }
    });
  } else {
    stdin?.resume();
  }
  streams.onResize((size) => {
    void attachment.resize(size.width, size.height).catch(() => undefined);
  });
  try {
    await new Promise<void>((resolve) => {
      void io.ended.then(resolve);
      streams.signal.addEventListener('abort', () => resolve(), { once: true });
      tooSlow.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    unsubscribe();
  }
  if (tooSlow.signal.aborted) return { error: `attach client fell more than ${MAX_CLIENT_BACKLOG} bytes behind the container's output and was disconnected` };
  return { exitCode: 0 };
}
