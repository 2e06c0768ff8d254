import { performance } from 'node:perf_hooks';
import type { CallContext } from '../containerd/call';
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError } from '../errors';
import { captureCapped } from '../io';
import { setTimerAt } from '../util/long-timer';
import type { ContainerContext } from './context';
import { ExecProcess, ExecStartError } from './exec-process';
import type { ContainerRecord } from './model';
import { quote } from '../util/bounds';

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

export interface ExecSyncSettings {
  /** Each of stdout and stderr is kept up to this many bytes; the rest is read and dropped. */
  maxOutputBytes: number;
  /** How long to wait for output to end after the process exited (a background child may hold the pipe). */
  drainTimeoutMs: number;
}

/** Node's timers hold at most 2^31-1 ms; a longer one would fire at once. */
const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * The CRI's ExecSync timeout in seconds: 0 means none, and a negative one
 * means none too (containerd's CRI plugin waits without a timer for any
 * value <= 0); longer than a Node timer can hold is capped (24.8 days).
 */
export function execTimeoutSeconds(timeout: bigint): number {
  if (timeout <= 0n) return 0;
  return timeout > BigInt(MAX_TIMEOUT_SECONDS) ? MAX_TIMEOUT_SECONDS : Number(timeout);
}

/**
 * ExecSync: runs a command in the container and returns its output and
 * exit code. Output is capped so a command that prints forever costs
 * bounded memory; the process is killed on timeout and on the caller going
 * away, and always cleaned up.
 */
export async function execSync(
  ctx: ContainerContext,
  record: ContainerRecord,
  cmd: string[],
  timeoutSeconds: number,
  settings: ExecSyncSettings,
  call: CallContext,
): Promise<ExecSyncResult> {
  if (cmd.length === 0) throw new InvalidArgumentError('ExecSync: cmd must not be empty');
  if (record.state !== 'running') throw new FailedPreconditionError(`ExecSync: container ${record.id} is not running`);
  const t0 = performance.now();
  let proc: ExecProcess;
  try {
    proc = await ExecProcess.start(ctx, record, { cmd, tty: false, stdin: false }, call);
  } catch (err) {
    // Answer as a shell would, with 127 or 126 and the runtime's words, instead of failing the probe call itself.
    if (err instanceof ExecStartError) return { stdout: Buffer.alloc(0), stderr: Buffer.from(err.message), exitCode: err.notFound ? 127 : 126 };
    throw err;
  }
  const started = performance.now() - t0;
  const stdout = captureCapped(proc.io.stdout, settings.maxOutputBytes);
  const stderr = captureCapped(proc.io.stderr!, settings.maxOutputBytes);
  const onAbort = () => void proc.kill();
  call.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // The command's own timeout decides (our timer, not a gRPC deadline: containerd reports an
    // expired wait as an unknown error); the Wait call itself only ends with the process or the caller.
    const waitCtl = new AbortController();
    const onCallerGone = () => waitCtl.abort(call.signal!.reason);
    call.signal?.addEventListener('abort', onCallerGone, { once: true });
    let timedOut = false;
    // The timeout is an int64 of seconds: past 2^31-1 ms a plain setTimeout would fire at once.
    const timer =
      timeoutSeconds > 0
        ? setTimerAt(Date.now() + timeoutSeconds * 1000, () => {
            timedOut = true;
            waitCtl.abort();
          })
        : undefined;
    let exitStatus: number;
    try {
      exitStatus = await proc.wait(waitCtl.signal);
    } catch (err) {
      if (timedOut) {
        await proc.kill();
        throw new DeadlineExceededError(`ExecSync: command ${quote(cmd.join(' '))} timed out after ${timeoutSeconds} s and was killed`);
      }
      throw err;
    } finally {
      timer?.clear();
      call.signal?.removeEventListener('abort', onCallerGone);
    }
    const drained = new Promise<void>((resolve) => setTimeout(resolve, settings.drainTimeoutMs).unref());
    await Promise.race([Promise.all([stdout, stderr]), drained]);
    await proc.io.close();
    const [out, errOut] = await Promise.all([stdout, stderr]);
    ctx.logger.debug('exec done', { containerId: record.id, execId: proc.execId, startMs: +started.toFixed(1), totalMs: +(performance.now() - t0).toFixed(1) });
    return { stdout: out.data, stderr: errOut.data, exitCode: exitStatus };
  } finally {
    call.signal?.removeEventListener('abort', onAbort);
    // The answer does not wait for containerd to delete the exec (3-5 ms of every probe): its
    // output has been read and its FIFOs closed above, and dispose() never fails (it kills and
    // retries a delete that does). Errors take the same path.
    void proc.dispose();
  }
}
