import path from 'node:path';
import type { HarnessDescription } from '../harness';
import { AdapterOptions, startAdapter, AdapterProcess } from './adapter-process';

/**
 * The settings an adapter needs to run pods on the test harness: its
 * registry hosts (plain http to the local registry), its pause image, its
 * CNI network, and a runc root under the harness dir so teardown can clean it.
 */
export function harnessAdapterArgs(h: HarnessDescription, extra: string[] = []): string[] {
  return [
    '--registry-config-path', h.registry.configPath,
    '--sandbox-image', h.images.pause,
    '--runtimes', JSON.stringify({ runc: { type: 'io.containerd.runc.v2', root: path.join(h.tmpDir, 'runc-adapter') } }),
    ...extra,
  ];
}

export function startHarnessAdapter(
  h: HarnessDescription,
  opts: Partial<AdapterOptions> & { namespace: string },
): Promise<AdapterProcess> {
  return startAdapter({
    containerdAddress: h.containerd.address,
    cniConfDir: h.cni.confDir,
    ...opts,
    extraArgs: harnessAdapterArgs(h, opts.extraArgs),
  });
}
