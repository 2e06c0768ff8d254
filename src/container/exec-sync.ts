import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { CallContext } from '../containerd/call';
import { OCI_PROCESS_TYPE_URL, packJson } from '../containerd/typeurl';
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors';
import { captureCapped, TaskIo } from '../io';
import type { ContainerContext } from './context';
import type { ContainerRecord } from './model';

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

/** The exec's process: the container's own (user, env, cwd, capabilities) with other arguments. */
function execProcess(record: ContainerRecord, cmd: string[]): Record<string, unknown> {
  const base = record.spec?.process;
  if (!base) throw new FailedPreconditionError(`container ${record.id} has no stored process spec to exec with`);
  return { ...base, args: cmd, terminal: false, consoleSize: undefined };
}

/**
 * ExecSync: runs a command in the container and returns its output and
 * exit code. A fresh exec ID and FIFO set per call, always cleaned up
 * (also on timeout and on the caller going away); output is capped so a
 * command that prints forever costs bounded memory.
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
  const execId = `exec-${randomBytes(8).toString('hex')}`;
  const t0 = performance.now();
  const phases: Record<string, number> = {};
  const mark = (name: string) => (phases[name] = +(performance.now() - t0).toFixed(1));
  const io = await TaskIo.create({ dir: path.join(ctx.config.state, 'fifo'), id: `${record.id}-${execId}` });
  const stdout = captureCapped(io.stdout, settings.maxOutputBytes);
  const stderr = captureCapped(io.stderr!, settings.maxOutputBytes);
  const containerId = record.id;
  let created = false;
  const kill = () => ctx.conn.tasks.kill({ containerId, execId, signal: 9, all: false }).catch(() => undefined);
  const onAbort = () => void kill();
  call.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await ctx.conn.tasks.exec(
      { containerId, execId, ...io.paths, terminal: false, spec: packJson(OCI_PROCESS_TYPE_URL, execProcess(record, cmd)) },
      call,
    );
    created = true;
    mark('exec');
    try {
      await ctx.conn.tasks.start({ containerId, execId }, call);
    } catch (err) {
      // runc could not execute the command (missing binary, not executable): answer as a shell
      // would, with 127 or 126 and the runtime's words, instead of failing the probe call itself.
      const message = (err as Error).message;
      if (call.signal?.aborted) throw err;
      const missing = /not found|no such file/i.test(message);
      return { stdout: Buffer.alloc(0), stderr: Buffer.from(message), exitCode: missing ? 127 : 126 };
    }
    mark('start');
    io.upgradeToEof();

    // The command's own timeout decides (our timer, not a gRPC deadline: containerd reports an
    // expired wait as an unknown error); the Wait call itself only ends with the process or the caller.
    const waitCtl = new AbortController();
    const onCallerGone = () => waitCtl.abort();
    call.signal?.addEventListener('abort', onCallerGone, { once: true });
    let timedOut = false;
    const timer =
      timeoutSeconds > 0
        ? setTimeout(() => {
            timedOut = true;
            waitCtl.abort();
          }, timeoutSeconds * 1000)
        : undefined;
    let exitStatus: number;
    try {
      const r = await ctx.conn.tasks.wait({ containerId, execId }, { deadline: Date.now() + 365 * 24 * 3600 * 1000, signal: waitCtl.signal });
      exitStatus = r.exitStatus;
      mark('wait');
    } catch (err) {
      if (timedOut) {
        await kill();
        throw new DeadlineExceededError(`ExecSync: command ${JSON.stringify(cmd)} timed out after ${timeoutSeconds} s and was killed`);
      }
      throw err;
    } finally {
      clearTimeout(timer);
      call.signal?.removeEventListener('abort', onCallerGone);
    }
    const drained = new Promise<void>((resolve) => setTimeout(resolve, settings.drainTimeoutMs).unref());
    await Promise.race([Promise.all([stdout, stderr]), drained]);
    await io.close();
    const [out, errOut] = await Promise.all([stdout, stderr]);
    mark('output');
    ctx.logger.debug('exec phases', { containerId, execId, ...phases });
    return { stdout: out.data, stderr: errOut.data, exitCode: exitStatus };
  } finally {
    call.signal?.removeEventListener('abort', onAbort);
    await io.close();
    if (created) {
      await ctx.conn.tasks.deleteProcess({ containerId, execId }).catch(async (err: unknown) => {
        // Still running (timeout or cancel): kill, wait briefly, delete.
        if (!(err instanceof NotFoundError)) {
          await kill();
          await ctx.conn.tasks.wait({ containerId, execId }, { deadline: Date.now() + 5000 }).catch(() => undefined);
          await ctx.conn.tasks.deleteProcess({ containerId, execId }).catch(() => undefined);
        }
      });
    }
  }
}
