import { Container } from '../gen/containerd/services/containers/v1/containers';
import type { CallContext } from './call';
import type { ContainerdConnection } from './connection';

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
