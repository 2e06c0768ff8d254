/**
 * Every label and extension key the adapter writes on containerd objects,
 * in one place: recovery reads back exactly what creation wrote.
 */
export const LABELS = {
  /** sandbox | container */
  kind: 'io.cri-adapter.kind',
  sandboxId: 'io.cri-adapter.sandbox-id',
  /** The reserved CRI name (name_namespace_uid_attempt for pods). */
  name: 'io.cri-adapter.name',
  podName: 'io.kubernetes.pod.name',
  podNamespace: 'io.kubernetes.pod.namespace',
  podUid: 'io.kubernetes.pod.uid',
  /** On leases: made by the adapter (value OWNER), so a later process may release them. */
  owner: 'io.cri-adapter.owner',
} as const;

/**
 * containerd's GC keeps a snapshot alive while a container carries a label
 * naming it: the views of a container's image mounts (Mount.image), one
 * label per mount, keyed by the mount's index.
 */
export function imageMountRefLabel(snapshotter: string, index: number): string {
  return `containerd.io/gc.ref.snapshot.${snapshotter}/image-mount-${index}`;
}

export const OWNER = 'cri-adapter';

export const KIND_SANDBOX = 'sandbox';
export const KIND_CONTAINER = 'container';

/** Container extensions: structured state too large or too nested for labels. */
export const EXTENSIONS = {
  sandboxMetadata: 'io.cri-adapter.sandbox.metadata',
  containerMetadata: 'io.cri-adapter.container.metadata',
} as const;

export const METADATA_TYPE_URLS = {
  sandbox: 'io.cri-adapter/SandboxMetadata',
  container: 'io.cri-adapter/ContainerMetadata',
} as const;
