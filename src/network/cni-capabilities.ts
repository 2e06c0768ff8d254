import { InvalidArgumentError } from '../errors';
import { PodSandboxConfig, Protocol } from '../gen/runtime/v1/api';
import type { CniCapabilities } from './cni';

export const INGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/ingress-bandwidth';
export const EGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/egress-bandwidth';

/** The CRI's runtime capabilities for CNI, from the pod's config. */
export function cniCapabilities(config: PodSandboxConfig, podCidr: string): CniCapabilities {
  const protocols: Record<number, 'tcp' | 'udp' | 'sctp'> = { [Protocol.TCP]: 'tcp', [Protocol.UDP]: 'udp', [Protocol.SCTP]: 'sctp' };
  const portMappings = config.portMappings
    .filter((p) => p.hostPort > 0)
    .map((p) => ({
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol: protocols[p.protocol] ?? 'tcp',
      ...(p.hostIp ? { hostIP: p.hostIp } : {}),
    }));
  const caps: CniCapabilities = { portMappings };
  const ingress = parseBandwidth(config.annotations[INGRESS_BANDWIDTH_ANNOTATION]);
  const egress = parseBandwidth(config.annotations[EGRESS_BANDWIDTH_ANNOTATION]);
  if (ingress || egress) {
    // The burst has no annotation of its own; a large bucket means "rate-limit only", as kubelets have long done.
    const burst = 2 ** 31 - 1;
    caps.bandwidth = {
      ...(ingress ? { ingressRate: ingress, ingressBurst: burst } : {}),
      ...(egress ? { egressRate: egress, egressBurst: burst } : {}),
    };
  }
  if (config.dnsConfig) {
    caps.dns = { servers: config.dnsConfig.servers, searches: config.dnsConfig.searches, options: config.dnsConfig.options };
  }
  if (podCidr) caps.ipRanges = [[{ subnet: podCidr }]];
  return caps;
}

const SUFFIX: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** A Kubernetes quantity such as "10M" as bits per second; undefined when absent. */
export function parseBandwidth(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(value.trim());
  // Annotation values may be long: quote a bounded part of a bad one.
  if (!m) throw new InvalidArgumentError(`bandwidth annotation ${JSON.stringify(value.slice(0, 64))} is not a quantity like 10M`);
  return Math.round(Number(m[1]) * SUFFIX[m[2] ?? '']!);
}
