import { InvalidArgumentError } from '../errors';
import { Container } from '../gen/containerd/services/containers/v1/containers';
import type { CallContext } from './call';
import type { ContainerdConnection } from './connection';
import { OCI_SPEC_TYPE_URL, packJson, packRuncOptions } from './typeurl';

/**
 * Updates only the named fields of a containerd container (field-mask
 * paths such as `spec` or `extensions.<key>`); everything else is untouched.
 */
export async function updateContainerFields(
  conn: ContainerdConnection,
  id: string,
  fields: Partial<Container>,
  paths: string[],
  ctx?: CallContext,
): Promise<void> {
  await conn.containers.update({ container: Container.fromPartial({ ...fields, id }), updateMask: paths }, ctx);
}

export interface NewContainer {
  id: string;
  labels: Record<string, string>;
  /** Image record name the container was made from. */
  image: string;
  runtime: { type: string; root?: string; systemdCgroup?: boolean; binaryName?: string };
  spec: unknown;
  snapshotter: string;
  /** The rootfs snapshot's key; the container's ID when not given. */
  snapshotKey?: string;
  /** The adapter's own record, as one extension. */
  extension: { key: string; typeUrl: string; value: unknown };
}

/**
 * containerd refuses a request over its gRPC receive limit (16 MiB by
 * default) with a bare RESOURCE_EXHAUSTED; the spec and the stored CRI
 * config are the two large parts of a Create, so they are measured first.
 */
export const MAX_CONTAINER_RECORD_BYTES = 15 * 1024 * 1024;

/** Creates a container over its rootfs snapshot, with its runc options and OCI spec. */
export async function createContainerObject(conn: ContainerdConnection, c: NewContainer, ctx?: CallContext): Promise<void> {
  const spec = packJson(OCI_SPEC_TYPE_URL, c.spec);
  const extension = packJson(c.extension.typeUrl, c.extension.value);
  if (spec.value.length + extension.value.length > MAX_CONTAINER_RECORD_BYTES) {
    const mib = (n: number) => (n / 1048576).toFixed(1);
    throw new InvalidArgumentError(
      `the OCI spec (${mib(spec.value.length)} MiB) and the stored config (${mib(extension.value.length)} MiB) exceed the ${mib(MAX_CONTAINER_RECORD_BYTES)} MiB a containerd record may hold; send less env, args, mounts or annotations`,
    );
  }
  await conn.containers.create(
    {
      container: Container.fromPartial({
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime: { name: c.runtime.type, options: packRuncOptions(c.runtime) },
        spec,
        snapshotter: c.snapshotter,
        snapshotKey: c.snapshotKey ?? c.id,
        extensions: { [c.extension.key]: extension },
      }),
    },
    ctx,
  );
}
