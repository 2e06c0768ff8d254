import { existsSync } from 'node:fs';
import { InternalError } from '../errors';
import { runCommand } from '../host/commands';


/** Where `ip netns` keeps named namespaces (bind mounts that outlive their last process). */
export const NETNS_DIR = '/run/netns';

/** The name of a pod's network namespace: stable and derivable from the sandbox ID, so recovery needs no extra record. */
export function netnsNameFor(sandboxId: string): string {
  return `cri-adapter-${sandboxId.slice(0, 16)}`;
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/**
 * A persistent network namespace for a pod: CNI wires it up before any
 * process runs in it, and it survives the pause process so StopPodSandbox
 * can still run CNI DEL. iproute2 does the bind-mount dance (including
 * making /run/netns a shared mount point) correctly, so it is used rather
 * than re-implementing it.
 */
export async function createNetns(name: string, signal?: AbortSignal): Promise<string> {
  try {
    await runCommand('ip', ['netns', 'add', name], { signal });
  } catch (err) {
    throw new InternalError(`creating network namespace ${name}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
  // Bring up lo, as every pod expects a working 127.0.0.1 even when the CNI config has no loopback plugin.
  await runCommand('ip', ['-n', name, 'link', 'set', 'lo', 'up']).catch(() => undefined);
  return netnsPath(name);
}

/**
 * Names the network namespace a process already has, so it outlives the
 * process like one made by createNetns. A pod with a user namespace needs
 * this: its network namespace must belong to that user namespace (or the
 * pod cannot mount sysfs), so runc creates it inside, and CNI then wires it
 * up through the name, before the pause process is started.
 */
export async function adoptNetns(name: string, pid: number, signal?: AbortSignal): Promise<string> {
  try {
    await runCommand('ip', ['netns', 'attach', name, String(pid)], { signal });
  } catch (err) {
    throw new InternalError(`naming the network namespace of process ${pid} as ${name}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
  await runCommand('ip', ['-n', name, 'link', 'set', 'lo', 'up']).catch(() => undefined);
  return netnsPath(name);
}

/** Removes a namespace; a missing one is fine (remove is idempotent). */
export async function removeNetns(name: string): Promise<void> {
  if (!existsSync(netnsPath(name))) return;
  try {
    await runCommand('ip', ['netns', 'delete', name]);
  } catch (err) {
    if (existsSync(netnsPath(name))) {
      throw new InternalError(`removing network namespace ${name}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
    }
  }
}
