/**
 * The pod churn of a soak (run a pod, create and start a container, exec in
 * it, stop, remove) and what it must not leak, seen from outside the
 * adapter: its RSS and open fds, a CRI round trip (which waits behind any
 * event-loop stall), containerd's objects in its namespace, and the node's
 * network namespaces, mounts, CNI IP allocations and iptables rules. Shared
 * by the CI-sized test (test/integration/lifecycle.test.ts) and `npm run
 * soak` (test/bench/soak.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { CreateContainerRequest, PodSandboxConfig, RunPodSandboxRequest } from '../../src/gen/runtime/v1/api';
import { mountsUnder } from '../harness/util';
import type { CriClient } from './cri-client';

const run = promisify(execFile);

export interface SoakTarget {
  client: CriClient;
  adapterPid: number;
  /** The adapter's root/state/socket directory. */
  adapterDir: string;
  containerdAddress: string;
  namespace: string;
  /** host-local's directory of IP allocations for the pod network. */
  ipamDir: string;
  image: string;
}

export interface SoakSample {
  cycle: number;
  rssKiB: number;
  fds: number;
  /** Slowest of 20 Version round trips, ms: an event-loop stall shows here. */
  versionMaxMs: number;
  containers: number;
  tasks: number;
  snapshots: number;
  leases: number;
  ingests: number;
  /** Network namespaces of the soak's own pods still present. */
  netns: number;
  /** Mounts under the adapter's directory. */
  mounts: number;
  /** IP allocations held by the soak's own pods. */
  ipam: number;
  /** iptables rules mentioning CNI (node-wide: other users of the node move it too). */
  iptablesCni: number;
}

/** The figures that must come back to their start value once every pod is gone. */
export const OBJECT_FIELDS = ['containers', 'tasks', 'snapshots', 'leases', 'ingests', 'netns', 'mounts', 'ipam'] as const;

async function lines(cmd: string, args: string[]): Promise<string[]> {
  const { stdout } = await run(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter((l) => l.trim() !== '');
}

function ctr(t: SoakTarget, ...args: string[]): Promise<string[]> {
  return lines('ctr', ['--address', t.containerdAddress, '-n', t.namespace, ...args]);
}

/** host-local writes one file per IP holding the container ID (then the interface name). */
export function ipamHolders(ipamDir: string): string[] {
  if (!existsSync(ipamDir)) return [];
  const out: string[] = [];
  for (const f of readdirSync(ipamDir)) {
    if (f.startsWith('last_reserved_ip') || f === 'lock') continue;
    try {
      out.push(readFileSync(path.join(ipamDir, f), 'utf8').split(/\s/)[0]!);
    } catch {
      // released meanwhile
    }
  }
  return out;
}

/** The adapter's network namespaces (named after the sandbox ID's first 16 hex digits) among `ids`. */
export function netnsOf(ids: Iterable<string>): string[] {
  return [...ids].map((id) => `/run/netns/cri-adapter-${id.slice(0, 16)}`).filter((p) => existsSync(p));
}

export async function sample(t: SoakTarget, cycle: number, soakPods: Set<string>): Promise<SoakSample> {
  const status = readFileSync(`/proc/${t.adapterPid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const fds = readdirSync(`/proc/${t.adapterPid}/fd`).length;
  let versionMaxMs = 0;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await t.client.runtime.version({ version: '' });
    versionMaxMs = Math.max(versionMaxMs, performance.now() - t0);
  }
  const holders = new Set(ipamHolders(t.ipamDir));
  const [containers, tasks, snapshots, leases, ingests, iptables] = await Promise.all([
    ctr(t, 'containers', 'ls', '-q'),
    ctr(t, 'tasks', 'ls', '-q'),
    // Active snapshots only: committed image layers are not the churn's.
    ctr(t, 'snapshots', 'ls').then((l) => l.slice(1).filter((row) => /\bActive\s*$/.test(row))),
    ctr(t, 'leases', 'ls', '-q'),
    ctr(t, 'content', 'active').then((l) => l.slice(1)),
    lines('iptables-save', []).catch(() => []),
  ]);
  return {
    cycle,
    rssKiB,
    fds,
    versionMaxMs: +versionMaxMs.toFixed(2),
    containers: containers.length,
    tasks: tasks.length,
    snapshots: snapshots.length,
    leases: leases.length,
    ingests: ingests.length,
    netns: netnsOf(soakPods).length,
    mounts: mountsUnder(t.adapterDir).length,
    ipam: [...soakPods].filter((id) => holders.has(id)).length,
    iptablesCni: iptables.filter((l) => l.includes('CNI')).length,
  };
}

/** One cycle: pod, container, exec, stop, remove; the pod's ID goes into `soakPods` before it can leak. */
export async function cycle(t: SoakTarget, i: number, soakPods: Set<string>, logDirectory: string): Promise<void> {
  const name = `soak-${process.pid}-${i}`;
  const config = PodSandboxConfig.fromPartial({
    metadata: { name, namespace: 'soak', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    logDirectory,
    linux: {},
  });
  const { podSandboxId } = await t.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
  soakPods.add(podSandboxId);
  const { containerId } = await t.client.runtime.createContainer(
    CreateContainerRequest.fromPartial({
      podSandboxId,
      sandboxConfig: config,
      config: { metadata: { name: 'main' }, image: { image: t.image }, command: ['sleep', '3600'], logPath: `${name}.log`, linux: {} },
    }),
  );
  await t.client.runtime.startContainer({ containerId });
  const exec = await t.client.runtime.execSync({ containerId, cmd: ['echo', 'soak'], timeout: 10n });
  if (exec.exitCode !== 0 || exec.stdout.toString() !== 'soak\n') {
    throw new Error(`cycle ${i}: exec answered ${exec.exitCode} ${JSON.stringify(exec.stdout.toString())}`);
  }
  await t.client.runtime.stopContainer({ containerId, timeout: 0n });
  await t.client.runtime.stopPodSandbox({ podSandboxId });
  await t.client.runtime.removePodSandbox({ podSandboxId });
}

export function formatSamples(samples: SoakSample[]): string {
  const keys = Object.keys(samples[0] ?? {}) as (keyof SoakSample)[];
  const rows = [keys.map(String), ...samples.map((s) => keys.map((k) => String(s[k])))];
  const widths = keys.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join('  ')).join('\n');
}
