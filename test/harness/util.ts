/**
 * Small process, file and network helpers shared by the harness modules.
 * Everything here is used by code that must also work from a process 'exit'
 * handler, hence the synchronous variants.
 */
import { execFile, execFileSync, ExecFileSyncOptions } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

/** Directories searched for commands besides $PATH (root's sbin dirs are not always on it). */
const EXTRA_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of an executable named `cmd`, or undefined. */
export function findCommand(cmd: string): string | undefined {
  if (cmd.includes('/')) return isExecutable(cmd) ? cmd : undefined;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_PATH];
  for (const dir of dirs) {
    const p = path.join(dir, cmd);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

export function isExecutable(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A PATH that includes the sbin directories, for child processes. */
export function childPath(): string {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const d of EXTRA_PATH) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(':');
}

export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: childPath(), ...extra };
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    readonly code: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${cmd} ${args.join(' ')} failed (${String(code)}): ${(stderr || stdout).trim().slice(-2000)}`);
    this.name = 'CommandError';
  }
}

/** Run a command, resolve with its output, reject with CommandError on non-zero exit. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        env: opts.env ?? childEnv(),
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { code?: number | string | null; signal?: string | null };
          reject(new CommandError(cmd, args, e.code ?? e.signal ?? null, String(stdout), String(stderr)));
        } else {
          resolve({ stdout: String(stdout), stderr: String(stderr) });
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Synchronous run; throws CommandError on failure. */
export function runSync(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
  const o: ExecFileSyncOptions = {
    env: childEnv(),
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'pipe'],
    input: opts.input,
  };
  try {
    const stdout = execFileSync(cmd, args, o);
    return { stdout: stdout.toString(), stderr: '' };
  } catch (err) {
    const e = err as { status?: number | null; signal?: string | null; stdout?: Buffer; stderr?: Buffer };
    throw new CommandError(cmd, args, e.status ?? e.signal ?? null, e.stdout?.toString() ?? '', e.stderr?.toString() ?? '');
  }
}

/** runSync that swallows failures; returns stdout or undefined. */
export function tryRunSync(cmd: string, args: readonly string[], timeoutMs = 30_000): string | undefined {
  try {
    return runSync(cmd, args, { timeoutMs }).stdout;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Blocking sleep, for cleanup in 'exit' handlers. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** Thrown from a waitFor check to stop waiting at once (e.g. the process died). */
export class FatalWaitError extends Error {}

/** Poll `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: { timeoutMs?: number; intervalMs?: number; onTimeout?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      if (e instanceof FatalWaitError) throw e;
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const extra = opts.onTimeout ? `\n${opts.onTimeout()}` : '';
      const why = lastErr instanceof Error ? ` (last error: ${lastErr.message})` : '';
      throw new Error(`timed out waiting for ${what}${why}${extra}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

/** Is `pid` a live (not zombie) process? */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // state is the field after the ")" that ends the command name
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  argv: string[];
}

/** Every process on the machine with its argv and parent. */
export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`);
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const state = rest[0];
      if (state === 'Z' || state === 'X') continue;
      const ppid = Number(rest[1]);
      const argv = cmdline.toString('utf8').split('\0');
      if (argv.length > 0 && argv[argv.length - 1] === '') argv.pop();
      out.push({ pid, ppid, argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** pid and all its descendants (children first in the returned list order: deepest last). */
export function descendants(root: number, procs: ProcInfo[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

export function killQuiet(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL and wait (synchronously). Returns true if it ended. */
export function terminateSync(pids: number[], graceMs: number): boolean {
  const live = pids.filter(pidAlive);
  for (const pid of live) killQuiet(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some(pidAlive)) sleepSync(20);
  for (const pid of live) if (pidAlive(pid)) killQuiet(pid, 'SIGKILL');
  const deadline2 = Date.now() + 5000;
  while (Date.now() < deadline2 && live.some(pidAlive)) sleepSync(20);
  return !live.some(pidAlive);
}

export function killAllSync(pids: number[]): void {
  for (const pid of pids) killQuiet(pid, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && pids.some(pidAlive)) sleepSync(10);
}

/** Last `n` characters of a file, for error messages. */
export function tailFile(file: string, n = 4000): string {
  try {
    const buf = fs.readFileSync(file);
    return buf.subarray(Math.max(0, buf.length - n)).toString('utf8');
  } catch {
    return '';
  }
}

/** Mount points (unescaped) from /proc/self/mountinfo. */
export function mountPoints(): string[] {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    out.push(f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** Mount points at or below `dir`, deepest (longest) first. */
export function mountsUnder(dir: string): string[] {
  const base = dir.replace(/\/+$/, '');
  return mountPoints()
    .filter((m) => m === base || m.startsWith(base + '/'))
    .sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/** Unmount everything at or below `dir`: normal umount, retried, then lazy. */
export function unmountAllUnder(dir: string): string[] {
  const failed: string[] = [];
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return [];
    for (const m of mounts) {
      if (tryRunSync('umount', [m], 10_000) === undefined && round >= 2) {
        tryRunSync('umount', ['-l', m], 10_000);
      }
    }
  }
  for (const m of mountsUnder(dir)) failed.push(m);
  return failed;
}

/** rm -rf that first makes sure nothing is mounted below. */
export function removeTree(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // immutable or busy leftovers: try the command, which handles some cases fs.rmSync does not
    tryRunSync('rm', ['-rf', '--one-file-system', dir]);
  }
}
