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

/** Creates a container over its rootfs snapshot, with its runc options and OCI spec. */
export async function createContainerObject(conn: ContainerdConnection, c: NewContainer, ctx?: CallContext): Promise<void> {
  await conn.containers.create(
    {
      container: Container.fromPartial({
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime: { name: c.runtime.type, options: packRuncOptions(c.runtime) },
        spec: packJson(OCI_SPEC_TYPE_URL, c.spec),
        snapshotter: c.snapshotter,
        snapshotKey: c.snapshotKey ?? c.id,
        extensions: { [c.extension.key]: packJson(c.extension.typeUrl, c.extension.value) },
      }),
    },
    ctx,
  );
}
