import type { SpecOpt } from './oci-types';

/**
 * The OCI annotations containerd's CRI plugin sets. Shims and VM runtimes
 * (Kata, gVisor, NRI plugins) key off these exact names, so they are kept
 * verbatim.
 */
export const CRI_ANNOTATIONS = Object.freeze({
  containerType: 'io.kubernetes.cri.container-type',
  sandboxId: 'io.kubernetes.cri.sandbox-id',
  sandboxName: 'io.kubernetes.cri.sandbox-name',
  sandboxNamespace: 'io.kubernetes.cri.sandbox-namespace',
  sandboxUid: 'io.kubernetes.cri.sandbox-uid',
  sandboxLogDirectory: 'io.kubernetes.cri.sandbox-log-directory',
  sandboxImageName: 'io.kubernetes.cri.podsandbox.image-name',
  containerName: 'io.kubernetes.cri.container-name',
  imageName: 'io.kubernetes.cri.image-name',
  sandboxCpuPeriod: 'io.kubernetes.cri.sandbox-cpu-period',
  sandboxCpuQuota: 'io.kubernetes.cri.sandbox-cpu-quota',
  sandboxCpuShares: 'io.kubernetes.cri.sandbox-cpu-shares',
  sandboxMemory: 'io.kubernetes.cri.sandbox-memory',
});

export const CONTAINER_TYPE_SANDBOX = 'sandbox';
export const CONTAINER_TYPE_CONTAINER = 'container';

export function withAnnotations(values: Record<string, string>): SpecOpt {
  return (spec) => {
    spec.annotations = { ...spec.annotations, ...values };
  };
}

/**
 * Glob match with path.Match's rules for `*` and `?` (neither crosses a
 * "/"), which is how runtime handlers list annotation patterns in
 * containerd's config, e.g. "io.katacontainers.*".
 */
export function annotationMatches(pattern: string, key: string): boolean {
  let re = '^';
  for (const ch of pattern) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`).test(key);
}

/** The kubelet's pod/container annotations a runtime handler asked to see in the OCI spec. */
export function passthroughAnnotations(source: Record<string, string>, patterns: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (patterns.length === 0) return out;
  for (const [k, v] of Object.entries(source)) {
    if (patterns.some((p) => annotationMatches(p, k))) out[k] = v;
  }
  return out;
}
