import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { parseCapabilityMask, seccompArchFromNode } from '../oci';
import type { RuntimeEnvironment } from '../oci';

const CAP_SYS_RESOURCE = 24n;

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * What this node lets containers have, read once at start: the spec
 * builders are pure, so facts about the machine come in through here.
 */
export function probeNodeEnvironment(cgroupDriver: 'cgroupfs' | 'systemd'): RuntimeEnvironment {
  const status = readOr('/proc/self/status', '');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  const caps = capEff ? parseCapabilityMask(capEff) : undefined;
  const hasSysResource = capEff ? ((BigInt(`0x${capEff}`) >> CAP_SYS_RESOURCE) & 1n) === 1n : true;
  // Without CAP_SYS_RESOURCE runc cannot set a score below the adapter's own.
  const ownScore = Number.parseInt(readOr('/proc/self/oom_score_adj', '0').trim(), 10) || 0;
  const cgroupV2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  return {
    cgroupDriver,
    minOomScoreAdj: hasSysResource ? undefined : ownScore,
    availableCapabilities: caps,
    arch: seccompArchFromNode(process.arch),
    seccompEnabled: existsSync('/proc/sys/kernel/seccomp') || /^Seccomp:/m.test(status),
    cgroup: {
      cgroupV2,
      swapAvailable: cgroupV2 ? existsSync('/sys/fs/cgroup/memory.swap.max') : existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'),
      hugetlbAvailable: cgroupV2 ? readOr('/sys/fs/cgroup/cgroup.controllers', '').includes('hugetlb') : existsSync('/sys/fs/cgroup/hugetlb'),
    },
    userNamespaces: existsSync('/proc/self/ns/user') && Number.parseInt(readOr('/proc/sys/user/max_user_namespaces', '0'), 10) > 0,
    nodeHostname: os.hostname(),
  };
}
