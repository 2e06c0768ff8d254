import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { FatalWaitError, waitFor } from '../harness/util';
import { criClient, CriClient } from './cri-client';

// This file runs from test/support (jest) or dist/test/support (bench, quick start).
const REPO_ROOT = path.resolve(__dirname, '..', '..', ...(path.basename(path.resolve(__dirname, '..', '..')) === 'dist' ? ['..'] : []));
const MAIN = path.join(REPO_ROOT, 'dist', 'src', 'main.js');

export interface AdapterProcess {
  socket: string;
  dir: string;
  client: CriClient;
  process: ChildProcess;
  /** Everything the daemon wrote to stderr so far. */
  logs(): string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
}

export interface AdapterOptions {
  containerdAddress: string;
  namespace?: string;
  cniConfDir?: string;
  /** Reuse this root/state/socket directory (for restart tests). */
  dir?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Leave the log level to the config file (no --log-level flag, which would win over it). */
  fileLogLevel?: boolean;
}

function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** The settings that place one daemon's socket and state under `dir` and point it at a containerd and a CNI config dir. */
export function nodeSettings(o: { dir: string; containerdAddress: string; namespace: string; cniConfDir: string }): string[] {
  return [
    '--listen', path.join(o.dir, 'cri.sock'),
    '--root', path.join(o.dir, 'root'),
    '--state', path.join(o.dir, 'state'),
    '--containerd-address', o.containerdAddress,
    '--containerd-namespace', o.namespace,
    '--cni-conf-dir', o.cniConfDir,
  ];
}

/** The Node flags on main.js's first line (`#!/usr/bin/env -S node FLAGS`), which install.sh's wrapper uses too. */
export function daemonNodeFlags(): string[] {
  const first = readFileSync(MAIN, 'utf8').split('\n', 1)[0]!;
  return first.replace(/^#!.*[ /]node\s*/, '').split(/\s+/).filter(Boolean);
}

/** Starts the built daemon (dist/) as the kubelet's node would run it, and waits until it answers. */
export async function startAdapter(opts: AdapterOptions): Promise<AdapterProcess> {
  const dir = opts.dir ?? mkdtempSync('/tmp/cri-adapter-proc-');
  const cniConfDir = opts.cniConfDir ?? path.join(dir, 'net.d');
  mkdirSync(cniConfDir, { recursive: true });
  const socket = path.join(dir, 'cri.sock');
  const args = [
    // The daemon's Node flags as deployed, then a person's (profiling: CRI_ADAPTER_TEST_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p").
    ...daemonNodeFlags(),
    ...(process.env.CRI_ADAPTER_TEST_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    MAIN,
    ...nodeSettings({ dir, containerdAddress: opts.containerdAddress, namespace: opts.namespace ?? 'cri-adapter-test', cniConfDir }),
    // Repeating a flag makes the daemon see a list ("debug,warn") and refuse to start.
    ...(opts.extraArgs?.includes('--log-level') || opts.fileLogLevel ? [] : ['--log-level', 'debug']),
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  // Keeps the daemon's own log of a failed run for later reading (set by a person debugging).
  if (process.env.CRI_ADAPTER_TEST_LOG_DIR) child.stderr!.pipe(createWriteStream(path.join(process.env.CRI_ADAPTER_TEST_LOG_DIR, `adapter-${child.pid}.log`)));
  child.stdout!.on('data', (b: Buffer) => (stderr += b.toString()));
  const client = criClient(socket);

  try {
    await waitFor(
      'the adapter to answer',
      async () => {
        if (child.exitCode !== null) throw new FatalWaitError(`adapter exited with ${child.exitCode} before answering:\n${stderr}`);
        await client.runtime.version({ version: '' }, { deadline: Date.now() + 500 });
        return true;
      },
      { timeoutMs: 20_000 },
    );
  } catch (err) {
    if (err instanceof FatalWaitError) throw err;
    child.kill('SIGKILL');
    throw new Error(`adapter did not answer on ${socket} within 20 s:\n${stderr}`);
  }
  return {
    socket,
    dir,
    client,
    process: child,
    logs: () => stderr,
    async stop() {
      client.close();
      child.kill('SIGTERM');
      const code = await waitExit(child);
      // A directory made here is this run's alone; one the caller passed may be reused for a restart.
      // A pod left running keeps its /dev/shm tmpfs mounted inside; then the directory stays.
      if (!opts.dir) {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // busy mount point: left for the harness teardown
        }
      }
      return code;
    },
    async kill() {
      client.close();
      child.kill('SIGKILL');
      await waitExit(child);
    },
  };
}
