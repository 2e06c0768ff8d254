import { ContainerConfig, CreateContainerRequest, DeepPartial, PodSandboxConfig } from '../../src/gen/runtime/v1/api';
import type { CriClient } from './cri-client';

/** The pod a test's containers run in. */
export interface TestPod {
  id: string;
  config: PodSandboxConfig;
}

/** Creates and starts a container of `image` in the pod, as the kubelet does (config plus the pod's config); returns its ID. */
export async function startContainerIn(
  client: CriClient,
  pod: TestPod,
  image: string,
  name: string,
  command: string[],
  extra: DeepPartial<ContainerConfig> = {},
): Promise<string> {
  const { containerId } = await client.runtime.createContainer(
    CreateContainerRequest.fromPartial({
      podSandboxId: pod.id,
      sandboxConfig: pod.config,
      config: { metadata: { name }, image: { image }, command, linux: {}, ...extra },
    }),
  );
  await client.runtime.startContainer({ containerId });
  return containerId;
}
