/** Pod sandboxes as the integration tests make them through the CRI. */
import { DeepPartial, PodSandboxConfig, RunPodSandboxRequest } from '../../src/gen/runtime/v1/api';
import type { CriClient } from './cri-client';

/** A pod config named `name` in the Kubernetes namespace `namespace`: metadata, hostname and `linux: {}`, then `more`. */
export function podConfig(namespace: string, name: string, more: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  return PodSandboxConfig.fromPartial({
    metadata: { name, namespace, uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    linux: {},
    ...more,
  });
}

/** RunPodSandbox; the new pod's ID. */
export async function runPod(client: CriClient, config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
  const { podSandboxId } = await client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config, runtimeHandler }));
  return podSandboxId;
}
