import { createHash } from 'node:crypto';

/**
 * Chain IDs name a stack of layers: the first is its diff ID, each next one
 * hashes the parent's chain ID and the layer's diff ID. Snapshots of
 * unpacked layers are committed under these names, so two images that share
 * a base share its snapshots.
 */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const parent = out[out.length - 1];
    out.push(parent === undefined ? diffId : 'sha256:' + createHash('sha256').update(`${parent} ${diffId}`).digest('hex'));
  }
  return out;
}

// Labels containerd's garbage collector follows: content referenced this way
// lives exactly as long as the thing that references it.
export const GC_REF_CONTENT = 'containerd.io/gc.ref.content';
export const GC_REF_SNAPSHOT = 'containerd.io/gc.ref.snapshot';
export const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';

/**
 * Label for an index blob: it keeps the child manifest at `position` in its
 * list. Only children that were fetched are labelled; the other platforms'
 * manifests are not in the store.
 */
export function indexGcLabel(position: number, childDigest: string): Record<string, string> {
  return { [`${GC_REF_CONTENT}.m.${position}`]: childDigest };
}

/** Labels for a manifest blob: it keeps its config and layers. */
export function manifestGcLabels(configDigest: string, layerDigests: string[]): Record<string, string> {
  const labels: Record<string, string> = { [`${GC_REF_CONTENT}.config`]: configDigest };
  layerDigests.forEach((d, i) => (labels[`${GC_REF_CONTENT}.l.${i}`] = d));
  return labels;
}

/** Labels for a config blob: it keeps the unpacked snapshot chain in the given snapshotter. */
export function configGcLabels(snapshotter: string, topChainId: string | undefined): Record<string, string> {
  return topChainId ? { [`${GC_REF_SNAPSHOT}.${snapshotter}`]: topChainId } : {};
}
