import { mkdirSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InternalError } from '../errors';
import { runCommand } from '../host/commands';
import { readMountinfoAsync } from '../host/mountinfo';
import type { DNSConfig } from '../gen/runtime/v1/api';


/** Size of a pod's /dev/shm, as Docker and containerd default it. */
export const SHM_SIZE_BYTES = 64 * 1024 * 1024;

export interface SandboxFilePaths {
  dir: string;
  hostnamePath: string;
  hostsPath: string;
  resolvConfPath: string;
  /** Absent when the pod shares the host's IPC namespace (it then uses the host's /dev/shm). */
  shmPath?: string;
}

export function sandboxFilePaths(stateDir: string, sandboxId: string, hostIpc: boolean): SandboxFilePaths {
  const dir = path.join(stateDir, 'sandboxes', sandboxId);
  return {
    dir,
    hostnamePath: path.join(dir, 'hostname'),
    hostsPath: path.join(dir, 'hosts'),
    resolvConfPath: path.join(dir, 'resolv.conf'),
    shmPath: hostIpc ? undefined : path.join(dir, 'shm'),
  };
}

/** /etc/resolv.conf from the pod's DNS config: the kubelet computes it; the runtime only writes it. */
export function resolvConfFor(dns: DNSConfig): string {
  const lines: string[] = [];
  if (dns.searches.length) lines.push(`search ${dns.searches.join(' ')}`);
  for (const s of dns.servers) lines.push(`nameserver ${s}`);
  if (dns.options.length) lines.push(`options ${dns.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** A pod with its own network gets a minimal hosts file; the kubelet adds its own for containers it manages. */
export function defaultHostsFile(): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    '',
  ].join('\n');
}

export interface SandboxFileInput {
  hostname: string;
  hostNetwork: boolean;
  dnsConfig: DNSConfig | undefined;
}

/**
 * Writes /etc/hostname, /etc/hosts and /etc/resolv.conf for the pod and
 * mounts its /dev/shm. Host-network pods see the node's hosts and resolver.
 *
 * The files are a few hundred bytes in the state dir (tmpfs on a node):
 * written synchronously. Through fs.promises each file costs three or four
 * thread-pool round trips, and with pods starting at once on a busy node the
 * queue behind libuv's four threads made this the slowest step of
 * RunPodSandbox (seconds, measured with 20 concurrent pods).
 */
export async function createSandboxFiles(paths: SandboxFilePaths, input: SandboxFileInput): Promise<void> {
  const readOr = (file: string, fallback: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return fallback;
    }
  };
  mkdirSync(paths.dir, { recursive: true, mode: 0o711 });
  writeFileSync(paths.hostnamePath, `${input.hostname}\n`, { mode: 0o644 });
  writeFileSync(paths.hostsPath, input.hostNetwork ? readOr('/etc/hosts', defaultHostsFile()) : defaultHostsFile(), { mode: 0o644 });
  writeFileSync(paths.resolvConfPath, input.dnsConfig ? resolvConfFor(input.dnsConfig) : readOr('/etc/resolv.conf', ''), { mode: 0o644 });
  if (paths.shmPath) {
    mkdirSync(paths.shmPath, { recursive: true, mode: 0o700 });
    try {
      await runCommand('mount', ['-t', 'tmpfs', '-o', `nosuid,nodev,noexec,mode=1777,size=${SHM_SIZE_BYTES}`, 'shm', paths.shmPath]);
    } catch (err) {
      throw new InternalError(`mounting /dev/shm for the pod at ${paths.shmPath}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
    }
  }
}

async function isMountpoint(p: string): Promise<boolean> {
  return (await readMountinfoAsync()).some((m) => m.mountpoint === p);
}

/** Unmounts the pod's /dev/shm (StopPodSandbox); a missing mount is fine. */
export async function releaseShm(paths: SandboxFilePaths): Promise<void> {
  if (!paths.shmPath || !(await isMountpoint(paths.shmPath))) return;
  try {
    await runCommand('umount', [paths.shmPath]);
  } catch {
    await runCommand('umount', ['-l', paths.shmPath]).catch(() => undefined);
  }
}

/** Removes everything the pod had on disk (RemovePodSandbox). */
export async function removeSandboxFiles(paths: SandboxFilePaths): Promise<void> {
  await releaseShm(paths);
  await fs.rm(paths.dir, { recursive: true, force: true });
}
