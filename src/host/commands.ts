/**
 * Host commands (CNI plugins, `ip netns`, `mount`) run by a small helper
 * process instead of by the daemon itself.
 *
 * Why: Node starts a process with fork(), which copies the page tables of
 * the whole daemon and runs on its event loop. Profiled under 20 concurrent
 * RunPodSandbox calls, ChildProcess.spawn took half of the daemon's busy
 * time (about 5 ms per process, a dozen processes per pod lifecycle: three
 * CNI plugins each way, the namespace, lo, the /dev/shm mount), and every
 * CRI call waited behind it. The helper (host/command-helper.ts) has a small
 * heap, so its forks are cheaper, and they block only its own loop.
 *
 * If the helper cannot be started (or its script is not there, as when the
 * sources run under ts-jest), commands are run here directly, the same way.
 */
import { ChildProcess, fork, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export interface CommandRequest {
  file: string;
  args: readonly string[];
  /** The whole environment of the command; the daemon's own when absent. */
  env?: Record<string, string>;
  /** Written to its stdin, which is then closed. */
  input?: string;
  /** A process group of its own, so kill() also ends what it started. */
  detached?: boolean;
}

export interface CommandResult {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface RunningCommand {
  /** Settles when the command has exited and its output is read; rejects when it could not be started. */
  result: Promise<CommandResult>;
  /** SIGKILL to it (to its whole group when detached). */
  kill(): void;
}

/** Output kept per stream; more is dropped (nothing run here prints that much). */
export const MAX_COMMAND_OUTPUT = 4 * 1024 * 1024;

/** Messages between the daemon and the helper (JSON over the IPC channel). */
export type ToHelper = { kind: 'run'; id: number; request: CommandRequest } | { kind: 'kill'; id: number };
export type FromHelper = {
  id: number;
  /** The helper has started the command: from now on it may have run, whatever happens to the helper. */
  started?: true;
  result?: CommandResult;
  error?: { message: string; code?: string };
};

/** Starts one command in this process; the helper uses it too. */
export function runHere(request: CommandRequest): RunningCommand {
  let child!: ChildProcess;
  const result = new Promise<CommandResult>((resolve, reject) => {
    child = spawn(request.file, [...request.args], {
      env: request.env ?? process.env,
      stdio: [request.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: request.detached ?? false,
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => {
      if (stdout.length < MAX_COMMAND_OUTPUT) stdout += b.toString();
    });
    child.stderr!.on('data', (b: Buffer) => {
      if (stderr.length < MAX_COMMAND_OUTPUT) stderr += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(request.input);
    }
  });
  return {
    result,
    kill: () => {
      try {
        if (request.detached && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      // A grandchild holding the pipes would otherwise keep 'close' from coming.
      child.stdout?.destroy();
      child.stderr?.destroy();
    },
  };
}

const HELPER_SCRIPT = path.join(__dirname, 'command-helper.js');

/** The helper process and the commands it is running for us. */
class CommandHelper {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: CommandResult) => void; reject: (e: Error) => void; started: boolean; again: () => void }
  >();

  run(request: CommandRequest): RunningCommand | undefined {
    const child = this.ensure();
    if (!child) return undefined;
    const id = this.nextId++;
    let delegate: RunningCommand | undefined;
    let killed = false;
    const result = new Promise<CommandResult>((resolve, reject) => {
      // For a request this helper never started: run it through a new helper.
      const again = () => {
        delegate = startCommand(request);
        if (killed) delegate.kill();
        delegate.result.then(resolve, reject);
      };
      this.pending.set(id, { resolve, reject, started: false, again });
      if (this.pending.size === 1) this.ref(child, true);
      child.send({ kind: 'run', id, request } satisfies ToHelper, (err) => {
        if (!err || !this.pending.delete(id)) return;
        // Never delivered (the helper died a moment ago and is not reaped yet), so it did not run.
        if (this.child === child) this.child = undefined;
        if (this.pending.size === 0) this.ref(child, false);
        again();
      });
    });
    return {
      result,
      kill: () => {
        killed = true;
        if (delegate) delegate.kill();
        else if (child.connected) child.send({ kind: 'kill', id } satisfies ToHelper, () => undefined);
      },
    };
  }

  private ensure(): ChildProcess | undefined {
    if (this.child?.connected) return this.child;
    if (!existsSync(HELPER_SCRIPT)) return undefined;
    let child: ChildProcess;
    try {
      // No inherited Node flags (a profiler's, an inspector's): the helper is small on purpose.
      child = fork(HELPER_SCRIPT, [], { execArgv: ['--max-old-space-size=64'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    } catch {
      return undefined;
    }
    child.on('message', (m: FromHelper) => {
      const waiter = this.pending.get(m.id);
      if (!waiter) return;
      if (m.started) {
        waiter.started = true;
        return;
      }
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.ref(child, false);
      if (m.result) waiter.resolve(m.result);
      else waiter.reject(Object.assign(new Error(m.error?.message ?? 'the command helper gave no result'), { code: m.error?.code }));
    });
    const gone = (how: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      const waiters = [...this.pending.values()];
      this.pending.clear();
      // A request written just before the helper died can be in the pipe unread (its send
      // reported no error): one the helper never said it started did not run, and runs again.
      for (const w of waiters) {
        if (w.started) w.reject(new Error(`the command helper process ${how} while the command ran`));
        else w.again();
      }
    };
    child.on('exit', (code, signal) => gone(signal ? `was killed by ${signal}` : `exited with ${code}`));
    child.on('error', (err) => gone(`failed (${err.message})`));
    this.child = child;
    this.ref(child, false);
    return child;
  }

  /** The helper keeps the daemon alive only while it runs something for it. */
  private ref(child: ChildProcess, on: boolean): void {
    const channel = child.channel as { ref?: () => void; unref?: () => void } | undefined;
    if (on) {
      child.ref();
      channel?.ref?.();
    } else {
      child.unref();
      channel?.unref?.();
    }
  }
}

const helper = new CommandHelper();

/** Runs a host command through the helper (or here, if there is none). */
export function startCommand(request: CommandRequest): RunningCommand {
  return helper.run(request) ?? runHere(request);
}

/** A command that did not exit with 0, shaped like execFile's error (callers read stderr). */
export class CommandFailedError extends Error {
  constructor(
    readonly command: string,
    readonly result: CommandResult,
  ) {
    super(`${command} ${result.code === null ? `was killed by ${result.signal}` : `exited with ${result.code}`}${result.stderr.trim() ? `: ${result.stderr.trim().slice(0, 500)}` : ''}`);
  }

  get stderr(): string {
    return this.result.stderr;
  }
}

/** execFile's promise form on top of startCommand: resolves with the output of an exit 0, killed when `signal` fires. */
export async function runCommand(file: string, args: readonly string[], opts: { signal?: AbortSignal } = {}): Promise<CommandResult> {
  opts.signal?.throwIfAborted();
  const running = startCommand({ file, args });
  const onAbort = () => running.kill();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await running.result;
    opts.signal?.throwIfAborted();
    if (result.code !== 0) throw new CommandFailedError([file, ...args].join(' '), result);
    return result;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
