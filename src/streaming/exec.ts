/**
 * Streaming Exec: a process started in the container with the client's
 * channels wired to its FIFOs. The process is killed if the client goes
 * away; its exec and FIFOs are removed however it ends.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { CallContext } from '../containerd/call';
import { ExecOptions, ExecProcess, ExecStartError } from '../container/exec-process';
import type { RemoteCommandResult, RemoteCommandStreams } from './remote-command';

/** After the process exits, how long its output may take to arrive (a background child may hold the pipe). */
const OUTPUT_DRAIN_MS = 2000;

/** Copies `from` into `to` without ending it; resolves when `from` ends or is destroyed. */
function copy(from: Readable, to: Writable): Promise<void> {
  from.pipe(to, { end: false });
  return Promise.race([once(from, 'end'), once(from, 'close')]).then(
    () => undefined,
    () => undefined,
  );
}

/** `start` makes the exec process (the container domain's); this joins it to the client's streams. */
export async function runExec(
  start: (opts: ExecOptions, call: CallContext) => Promise<ExecProcess>,
  opts: { cmd: string[]; tty: boolean },
  streams: RemoteCommandStreams,
): Promise<RemoteCommandResult> {
  let proc: ExecProcess;
  try {
    proc = await start({ cmd: opts.cmd, tty: opts.tty, stdin: streams.stdin !== undefined }, { signal: streams.signal });
  } catch (err) {
    if (err instanceof ExecStartError) return { exitCode: err.notFound ? 127 : 126, message: err.message };
    throw err;
  }
  const onGone = () => void proc.kill();
  streams.signal.addEventListener('abort', onGone, { once: true });
  try {
    const outputs: Array<Promise<void>> = [];
    if (streams.stdout) outputs.push(copy(proc.io.stdout, streams.stdout));
    else proc.io.stdout.resume();
    if (proc.io.stderr) {
      if (streams.stderr) outputs.push(copy(proc.io.stderr, streams.stderr));
      else proc.io.stderr.resume();
    }
    if (streams.stdin && proc.io.stdin) {
      const stdin = proc.io.stdin;
      stdin.on('error', () => undefined);
      streams.stdin.pipe(stdin, { end: false });
      streams.stdin.once('end', () => void proc.closeStdin());
    }
    streams.onResize((size) => void proc.resize(size.width, size.height).catch(() => undefined));
    const exitCode = await proc.wait(streams.signal);
    const drained = new Promise<void>((resolve) => setTimeout(resolve, OUTPUT_DRAIN_MS).unref());
    await Promise.race([Promise.all(outputs), drained]);
    return { exitCode };
  } finally {
    streams.signal.removeEventListener('abort', onGone);
    streams.stdin?.unpipe();
    await proc.dispose();
  }
}
