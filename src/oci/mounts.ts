import { MountPropagation } from '../gen/runtime/v1/api';
import type { Mount } from '../gen/runtime/v1/api';
import type { MountPropagationMode, OciMount, SpecOpt } from './oci-types';
import { cleanAbsolutePath, invalidField } from './validate';
import { quote } from '../util/bounds';

/**
 * How the host mount under a source path propagates, as /proc/self/mountinfo
 * tells it ("shared:N" -> shared, "master:N" -> slave). The caller reads
 * mountinfo; this module only judges.
 */
export type HostPropagation = 'shared' | 'slave' | 'private';
export type PropagationLookup = (hostPath: string) => HostPropagation | undefined;

/** A bind mount the container asked for (CRI) or the adapter adds (sandbox files, volumes). */
export interface BindMount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  propagation: 'rprivate' | 'rslave' | 'rshared';
  recursiveReadOnly: boolean;
  extraOptions: string[];
}

export interface CriMountOptions {
  /** The runtime and kernel support "rro" (runc >= 1.1, Linux >= 5.12). */
  recursiveReadOnlySupported: boolean;
  lookupPropagation?: PropagationLookup;
  /**
   * Host paths for image-volume mounts (KEP-4639), keyed by the mount's
   * index in config.mounts: mounting the image is the caller's I/O.
   */
  imageMountSources?: ReadonlyMap<number, string>;
}

/**
 * Mount options a pod may add through mount_options. Only flags that narrow
 * what the mount allows or change timestamps; anything that would contradict
 * ro/rw or propagation set from the typed fields is refused.
 */
const ALLOWED_EXTRA_OPTIONS = new Set([
  'nosuid',
  'suid',
  'nodev',
  'dev',
  'noexec',
  'exec',
  'noatime',
  'atime',
  'relatime',
  'norelatime',
  'strictatime',
  'nostrictatime',
  'nodiratime',
  'diratime',
  'nosymfollow',
  'symfollow',
]);

export function propagationOption(p: MountPropagation, field: string): BindMount['propagation'] {
  switch (p) {
    case MountPropagation.PROPAGATION_PRIVATE:
      return 'rprivate';
    case MountPropagation.PROPAGATION_HOST_TO_CONTAINER:
      return 'rslave';
    case MountPropagation.PROPAGATION_BIDIRECTIONAL:
      return 'rshared';
    default:
      throw invalidField(field, `unknown mount propagation ${p}`);
  }
}

/** Validates one CRI mount and turns it into a bind. */
export function criMountToBind(m: Mount, index: number, opts: CriMountOptions): BindMount {
  const f = `mounts[${index}]`;
  if (m.containerPath === '') throw invalidField(`${f}.container_path`, 'must not be empty');
  const containerPath = cleanAbsolutePath(m.containerPath, `${f}.container_path`);
  if (containerPath === '/') throw invalidField(`${f}.container_path`, 'cannot mount over the container root');

  let hostPath = m.hostPath;
  const isImage = m.image !== undefined && m.image.image !== '';
  if (isImage) {
    if (hostPath !== '') throw invalidField(`${f}.host_path`, 'must be empty when image is set');
    const source = opts.imageMountSources?.get(index);
    if (source === undefined) throw invalidField(`${f}.image`, 'image volume mounts are not supported by this runtime');
    hostPath = source;
  } else if (hostPath === '') {
    throw invalidField(`${f}.host_path`, 'must not be empty');
  } else if (!hostPath.startsWith('/')) {
    throw invalidField(`${f}.host_path`, `path ${quote(hostPath)} must be absolute`);
  }

  if (m.uidMappings.length > 0 || m.gidMappings.length > 0) {
    // runc 1.1 has no idmapped mounts (`runc features` lists no "idmap"), so a volume is only ever a plain bind:
    // refuse rather than show the pod files it expected to own as the overflow ID.
    throw invalidField(`${f}.uidMappings`, 'idmapped mounts are not supported by this runtime (runc 1.1 cannot make them); mount the volume without uid/gid mappings');
  }

  const propagation = propagationOption(m.propagation, `${f}.propagation`);
  // The spec's own rules for rro come first: they are what the request got wrong, whatever the host mount is.
  if (m.recursiveReadOnly) {
    if (!m.readonly) throw invalidField(`${f}.recursive_read_only`, 'requires readonly to be true');
    if (propagation !== 'rprivate') throw invalidField(`${f}.recursive_read_only`, 'requires PROPAGATION_PRIVATE');
    if (!opts.recursiveReadOnlySupported) {
      throw invalidField(`${f}.recursive_read_only`, "this pod's runtime handler (its runc or the kernel) does not support recursive read-only mounts");
    }
  }

  if (opts.lookupPropagation && propagation !== 'rprivate') {
    const host = opts.lookupPropagation(hostPath);
    if (propagation === 'rshared' && host !== 'shared') {
      throw invalidField(`${f}.propagation`, `BIDIRECTIONAL needs ${quote(hostPath)} to be on a shared mount (it is ${host ?? 'unknown'})`);
    }
    if (propagation === 'rslave' && host !== 'shared' && host !== 'slave') {
      throw invalidField(
        `${f}.propagation`,
        `HOST_TO_CONTAINER needs ${quote(hostPath)} to be on a shared or slave mount (it is ${host ?? 'unknown'})`,
      );
    }
  }

  const extraOptions = m.mountOptions.map((o, i) => {
    if (!ALLOWED_EXTRA_OPTIONS.has(o)) throw invalidField(`${f}.mount_options[${i}]`, `option ${quote(o)} is not allowed`);
    return o;
  });

  if (isImage) {
    // An image's filesystem is data to read: never written, never executed from (KEP-4639).
    for (const o of ['nosuid', 'nodev', 'noexec']) if (!extraOptions.includes(o)) extraOptions.push(o);
    return { containerPath, hostPath, readonly: true, propagation, recursiveReadOnly: m.recursiveReadOnly, extraOptions };
  }
  return { containerPath, hostPath, readonly: m.readonly, propagation, recursiveReadOnly: m.recursiveReadOnly, extraOptions };
}

export function bindToOci(b: BindMount): OciMount {
  const access = b.readonly ? (b.recursiveReadOnly ? 'rro' : 'ro') : 'rw';
  return { destination: b.containerPath, type: 'bind', source: b.hostPath, options: ['rbind', b.propagation, access, ...b.extraOptions] };
}

function depth(p: string): number {
  return p === '/' ? 0 : p.split('/').length - 1;
}

/**
 * Orders mounts so a parent directory is always mounted before anything
 * under it (otherwise the parent would hide the child). Stable, so equal
 * depths keep the order they were given in.
 */
export function sortMounts(mounts: readonly OciMount[]): OciMount[] {
  return mounts
    .map((m, i) => ({ m, i, d: depth(cleanAbsolutePath(m.destination, 'mount destination')) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.m);
}

/**
 * Adds bind mounts. A bind replaces a default mount at the same destination,
 * and a bind of /dev itself replaces every default under /dev (they would
 * be hidden anyway, and runc would fail creating them in a host dir).
 * rootfsPropagation follows the strongest bind: a shared bind needs an
 * rshared root to propagate back, a slave bind needs at least rslave.
 */
export function withBindMounts(input: readonly BindMount[]): SpecOpt {
  return (spec) => {
    const binds = input.map((b) => ({ ...b, containerPath: cleanAbsolutePath(b.containerPath, 'mount container_path') }));
    const targets = new Set(binds.map((b) => b.containerPath));
    const kept = spec.mounts.filter((m) => {
      const dst = cleanAbsolutePath(m.destination, 'mount destination');
      if (targets.has(dst)) return false;
      if (targets.has('/dev') && dst.startsWith('/dev/')) return false;
      return true;
    });
    let rootProp: MountPropagationMode | undefined = spec.linux.rootfsPropagation;
    for (const b of binds) {
      if (b.propagation === 'rshared') rootProp = 'rshared';
      else if (b.propagation === 'rslave' && rootProp !== 'rshared' && rootProp !== 'shared') rootProp = 'rslave';
    }
    if (rootProp !== undefined) spec.linux.rootfsPropagation = rootProp;
    spec.mounts = sortMounts([...kept, ...binds.map(bindToOci)]);
  };
}

/** Drops `extra` binds whose destination a higher-precedence bind already covers. */
export function mergeBinds(primary: readonly BindMount[], extra: readonly BindMount[]): BindMount[] {
  const taken = new Set(primary.map((b) => b.containerPath));
  return [...primary, ...extra.filter((b) => !taken.has(b.containerPath))];
}

/** Host files the sandbox prepared for its containers. */
export interface SandboxFiles {
  hostsPath?: string;
  hostnamePath?: string;
  resolvConfPath?: string;
  /** The pod's shared /dev/shm (a tmpfs the caller mounted); absent means a private tmpfs per container. */
  shmPath?: string;
}

/**
 * The sandbox-provided files of a container. They follow the rootfs: with a
 * read-only root a workload must not be able to rewrite its name resolution
 * either. /dev/shm stays writable (it is memory, not config). With host IPC
 * the host's /dev/shm is shared, as IPC objects and POSIX shm belong
 * together.
 */
export function sandboxFileBinds(files: SandboxFiles, readonlyRootfs: boolean, hostIpc: boolean): BindMount[] {
  const bind = (containerPath: string, hostPath: string, readonly: boolean): BindMount => ({
    containerPath,
    hostPath,
    readonly,
    propagation: 'rprivate',
    recursiveReadOnly: false,
    extraOptions: [],
  });
  const out: BindMount[] = [];
  if (files.hostnamePath) out.push(bind('/etc/hostname', files.hostnamePath, readonlyRootfs));
  if (files.hostsPath) out.push(bind('/etc/hosts', files.hostsPath, readonlyRootfs));
  if (files.resolvConfPath) out.push(bind('/etc/resolv.conf', files.resolvConfPath, readonlyRootfs));
  const shm = hostIpc ? '/dev/shm' : files.shmPath;
  if (shm) out.push(bind('/dev/shm', shm, false));
  return out;
}

/**
 * Writable directories for the image's declared VOLUMEs that no CRI mount
 * covers; the caller creates one host directory per returned path and passes
 * the pairs back as binds.
 */
export function imageVolumesToCreate(volumes: Record<string, unknown> | undefined, covered: readonly BindMount[]): string[] {
  if (!volumes) return [];
  const taken = new Set(covered.map((b) => b.containerPath));
  const out: string[] = [];
  for (const v of Object.keys(volumes)) {
    const p = cleanAbsolutePath(v.startsWith('/') ? v : `/${v}`, 'image config Volumes');
    if (p !== '/' && !taken.has(p) && !out.includes(p)) out.push(p);
  }
  return out;
}

export function imageVolumeBinds(volumes: readonly { containerPath: string; hostPath: string }[]): BindMount[] {
  return volumes.map((v) => ({
    containerPath: cleanAbsolutePath(v.containerPath, 'image volume'),
    hostPath: v.hostPath,
    readonly: false,
    propagation: 'rprivate' as const,
    recursiveReadOnly: false,
    extraOptions: [],
  }));
}

/**
 * The pause container's mounts. VM-based runtimes build the pod's shared
 * /dev/shm and its DNS from the sandbox container's mounts; the pause process
 * itself never writes either, so both are read-only.
 */
export function withSandboxMounts(files: SandboxFiles, hostIpc: boolean): SpecOpt {
  return (spec) => {
    const hardening = ['nosuid', 'nodev', 'noexec'];
    const extra: OciMount[] = [];
    const shm = hostIpc ? '/dev/shm' : files.shmPath;
    if (shm) {
      spec.mounts = spec.mounts.filter((m) => m.destination !== '/dev/shm');
      extra.push({ destination: '/dev/shm', type: 'bind', source: shm, options: ['rbind', 'ro', ...hardening] });
    }
    if (files.resolvConfPath) {
      extra.push({ destination: '/etc/resolv.conf', type: 'bind', source: files.resolvConfPath, options: ['rbind', 'ro', ...hardening] });
    }
    // The pause process needs no view of cgroups; keeping it out shrinks what a
    // compromised pause image could read.
    spec.mounts = sortMounts([...spec.mounts.filter((m) => m.destination !== '/sys/fs/cgroup'), ...extra]);
  };
}
