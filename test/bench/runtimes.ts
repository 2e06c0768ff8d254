/**
 * A pod on one CRI runtime (the adapter or containerd's built-in plugin),
 * for scenarios that compare the two on the same containerd.
 */
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import {
  ContainerStatusRequest,
  CreateContainerRequest,
  DeepPartial,
  LinuxContainerConfig,
  PodSandboxConfig,
  PullImageRequest,
  RunPodSandboxRequest,
} from '../../src/gen/runtime/v1/api';
import type { CriClient } from '../support/cri-client';

export interface Runtime {
  name: string;
  client: CriClient;
  pod: string;
  podConfig: PodSandboxConfig;
  logDir: string;
  /** pid whose CPU time is charged for the logging. */
  pid: number;
}

let seq = 0;

export async function setUp(name: string, client: CriClient, image: string, pid: number): Promise<Runtime> {
  const logDir = mkdtempSync(`/tmp/cri-adapter-bench-logs-${name}-`);
  const n = `exec-logs-${name}-${process.pid}-${seq++}`;
  const podConfig = PodSandboxConfig.fromPartial({ metadata: { name: n, namespace: 'bench', uid: n }, logDirectory: logDir, linux: {} });
  await client.image.pullImage(PullImageRequest.fromPartial({ image: { image } }));
  const { podSandboxId } = await client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig }));
  return { name, client, pod: podSandboxId, podConfig, logDir, pid };
}

export async function startContainer(
  rt: Runtime,
  image: string,
  command: string[],
  linux: DeepPartial<LinuxContainerConfig> = {},
): Promise<{ id: string; log: string }> {
  const name = `c${seq++}`;
  const { containerId } = await rt.client.runtime.createContainer(
    CreateContainerRequest.fromPartial({
      podSandboxId: rt.pod,
      sandboxConfig: rt.podConfig,
      config: { metadata: { name }, image: { image }, command, logPath: `${name}.log`, linux },
    }),
  );
  await rt.client.runtime.startContainer({ containerId });
  return { id: containerId, log: path.join(rt.logDir, `${name}.log`) };
}

export async function waitExited(rt: Runtime, id: string): Promise<void> {
  for (;;) {
    const s = await rt.client.runtime.containerStatus(ContainerStatusRequest.fromPartial({ containerId: id }));
    if (s.status?.state === 2) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

