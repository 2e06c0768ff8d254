/**
 * The CRI log pipeline on real FIFOs without containerd, for the io tests
 * (unit and integration): temp dirs, FIFOs with the shim's ends as fds, a
 * writer child, and a parser for the CRI log format.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CriLogWriter, CriLogWriterOptions, LogSource } from '../../src/io/cri-log-writer';
import { TaskIo } from '../../src/io/task-io';
import { silentLogger } from '../../src/log/logger';

/** A fresh directory under the OS temp dir; removed by cleanupTempDirs(). */
const dirs: string[] = [];
export function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cri-io-'));
  dirs.push(d);
  return d;
}
export function cleanupTempDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

const children: ChildProcess[] = [];
export function killChildren(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/**
 * Opens the write end of a FIFO the way the shim holds it: a plain blocking
 * fd that a child process can inherit. The open cannot block here because the
 * code under test already holds a read end (O_RDWR).
 */
export function openWriteEnd(fifo: string): number {
  return fs.openSync(fifo, fs.constants.O_WRONLY);
}

export interface Writer {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/**
 * Runs `sh -c script` with stdout/stderr on the given fds, then closes the
 * parent's copies so the child's exit is the last writer going away.
 */
export function runWriter(script: string, stdoutFd: number, stderrFd?: number): Writer {
  const child = spawn('sh', ['-c', script], { stdio: ['ignore', stdoutFd, stderrFd ?? 'inherit'] });
  children.push(child);
  fs.closeSync(stdoutFd);
  if (stderrFd !== undefined) fs.closeSync(stderrFd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited };
}

export interface CriRecord {
  ts: string;
  stream: string;
  tag: string;
  content: Buffer;
}

/** Parses a CRI log as bytes (content is not decoded), failing on any malformed line. */
export function parseCriLog(data: Buffer): CriRecord[] {
  const out: CriRecord[] = [];
  if (data.length === 0) return out;
  if (data[data.length - 1] !== 0x0a) throw new Error('log does not end with a newline');
  let pos = 0;
  while (pos < data.length) {
    const nl = data.indexOf(0x0a, pos);
    const s1 = data.indexOf(0x20, pos);
    const s2 = data.indexOf(0x20, s1 + 1);
    const s3 = data.indexOf(0x20, s2 + 1);
    if (s1 < 0 || s3 < 0 || s3 > nl) throw new Error(`malformed record: ${data.subarray(pos, nl).toString()}`);
    out.push({
      ts: data.toString('latin1', pos, s1),
      stream: data.toString('latin1', s1 + 1, s2),
      tag: data.toString('latin1', s2 + 1, s3),
      content: data.subarray(s3 + 1, nl),
    });
    pos = nl + 1;
  }
  return out;
}

/** Go's RFC3339Nano in UTC: optional 1-9 fraction digits, never a trailing zero. */
export const RFC3339_NANO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{0,8}[1-9]))?Z$/;

/** Nanoseconds since the epoch of an RFC3339Nano timestamp (throws on a bad one). */
export function tsToNs(ts: string): bigint {
  const m = RFC3339_NANO.exec(ts);
  if (!m) throw new Error(`not RFC3339Nano: ${ts}`);
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return BigInt(ms) * 1_000_000n + BigInt((m[7] ?? '').padEnd(9, '0'));
}

/** How many fds of this process point at `p`. */
export function openFdsTo(p: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === p) n++;
    } catch {
      // fd closed while listing
    }
  }
  return n;
}

/** FIFOs + log writer + the shim's side of the FIFOs as inheritable fds. */
export async function setupLogPipeline(
  opts: Partial<CriLogWriterOptions> = {},
  withStderr = true,
  dir = tempDir(),
) {
  const io = await TaskIo.create({ dir: path.join(dir, 'fifo'), id: 'c1', tty: !withStderr });
  const logPath = opts.path ?? path.join(dir, 'pods', 'ns_pod_uid', 'ctr', '0.log');
  const sources: LogSource[] = [{ stream: 'stdout', readable: io.stdout }];
  if (io.stderr) sources.push({ stream: 'stderr', readable: io.stderr });
  const writer = await CriLogWriter.open({ path: logPath, sources, logger: silentLogger(), ...opts });
  const outFd = openWriteEnd(io.paths.stdout);
  const errFd = io.stderr ? openWriteEnd(io.paths.stderr) : undefined;
  // The "shim" holds its ends now, so EOF may be armed (as after task Create).
  io.upgradeToEof();
  return {
    dir,
    io,
    logPath,
    writer,
    run: (script: string) => runWriter(script, outFd, errFd),
    records: (): CriRecord[] => parseCriLog(fs.readFileSync(logPath)),
    done: async () => {
      await writer.ended;
      await writer.close();
      await io.close();
    },
  };
}

export function simple(records: CriRecord[]): Array<[string, string, string]> {
  return records.map((r) => [r.stream, r.tag, r.content.toString('latin1')]);
}

