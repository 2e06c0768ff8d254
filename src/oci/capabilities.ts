import type { Capability } from '../gen/runtime/v1/api';
import { FailedPreconditionError } from '../errors';
import type { SpecOpt } from './oci-types';
import { invalidField } from './validate';
import { quote } from '../util/bounds';

/**
 * Every capability Linux defines, indexed by its bit number (so a CapEff
 * mask from /proc/<pid>/status maps straight onto it). Ends at
 * CAP_CHECKPOINT_RESTORE (40), the last one as of Linux 6.x.
 */
export const ALL_CAPABILITIES: readonly string[] = Object.freeze([
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
]);

const KNOWN = new Set(ALL_CAPABILITIES);

/**
 * Turns a CapEff/CapBnd hex mask into names. The caller reads the mask
 * (e.g. from /proc/self/status); privileged containers get exactly these,
 * because runc cannot grant what the adapter itself lacks (on these machines
 * CAP_SYS_RESOURCE is missing from root's bounding set).
 */
export function parseCapabilityMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim() || '0'}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/** "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all mean the same capability. */
export function normalizeCapability(name: string, field: string): string {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!KNOWN.has(full)) throw invalidField(field, `unknown capability ${quote(name)}`);
  return full;
}

export interface CapabilitySets {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable: string[];
  ambient: string[];
}

/**
 * Computes the capability sets from the defaults and the CRI request, in
 * containerd's order so that mixed requests mean the same thing: add ALL,
 * then drop ALL, then individual adds, then individual drops. Hence
 * "drop ALL, add NET_BIND_SERVICE" leaves one capability and "add ALL, drop
 * CHOWN" leaves all but one.
 *
 * Plain adds stay out of the inheritable set on purpose: an inheritable
 * capability lets a non-root process regain it through file capabilities
 * (CVE-2022-24769). Ambient adds need inheritable and permitted to work, so
 * they go to every set.
 *
 * `available` is what the adapter holds; ALL means exactly that, and an
 * explicit add outside it is refused early instead of failing inside runc
 * with an opaque error.
 */
export function computeCapabilities(
  defaults: readonly string[],
  request: Capability | undefined,
  available: readonly string[],
  fieldPrefix: string,
): CapabilitySets {
  const set = new Set(defaults.filter((c) => available.includes(c)));
  const ambient = new Set<string>();
  if (request) {
    const isAll = (c: string) => c.trim().toUpperCase() === 'ALL' || c.trim().toUpperCase() === 'CAP_ALL';
    if (request.addCapabilities.some(isAll)) for (const c of available) set.add(c);
    if (request.dropCapabilities.some(isAll)) set.clear();

    const checkAvailable = (cap: string, field: string) => {
      if (!available.includes(cap)) {
        throw new FailedPreconditionError(`${field}: ${cap} is not available to the runtime on this node`);
      }
    };
    request.addCapabilities.forEach((c, i) => {
      if (isAll(c)) return;
      const field = `${fieldPrefix}.capabilities.add_capabilities[${i}]`;
      const cap = normalizeCapability(c, field);
      checkAvailable(cap, field);
      set.add(cap);
    });
    request.addAmbientCapabilities.forEach((c, i) => {
      const field = `${fieldPrefix}.capabilities.add_ambient_capabilities[${i}]`;
      if (isAll(c)) throw invalidField(field, 'ALL is not accepted for ambient capabilities');
      const cap = normalizeCapability(c, field);
      checkAvailable(cap, field);
      set.add(cap);
      ambient.add(cap);
    });
    request.dropCapabilities.forEach((c, i) => {
      if (isAll(c)) return;
      const cap = normalizeCapability(c, `${fieldPrefix}.capabilities.drop_capabilities[${i}]`);
      set.delete(cap);
      ambient.delete(cap);
    });
  }
  const ordered = ALL_CAPABILITIES.filter((c) => set.has(c));
  const orderedAmbient = ALL_CAPABILITIES.filter((c) => ambient.has(c));
  return {
    bounding: ordered,
    effective: [...ordered],
    permitted: [...ordered],
    inheritable: orderedAmbient,
    ambient: [...orderedAmbient],
  };
}

export function withCapabilities(sets: CapabilitySets): SpecOpt {
  return (spec) => {
    const caps: NonNullable<typeof spec.process.capabilities> = {
      bounding: [...sets.bounding],
      effective: [...sets.effective],
      permitted: [...sets.permitted],
    };
    if (sets.inheritable.length > 0) caps.inheritable = [...sets.inheritable];
    if (sets.ambient.length > 0) caps.ambient = [...sets.ambient];
    spec.process.capabilities = caps;
  };
}

/** The capabilities currently in the spec's effective set (what seccomp tailoring looks at). */
export function effectiveCapabilities(spec: { process: { capabilities?: { effective?: string[] } } }): string[] {
  return spec.process.capabilities?.effective ?? [];
}
