import { PodSandbox, PodSandboxFilter, PodSandboxState, PodSandboxStatus } from '../gen/runtime/v1/api';
import { SandboxRecord } from '../sandbox/model';
import { labelsMatch } from '../util/label-selector';

export function criSandboxState(record: SandboxRecord): PodSandboxState {
  return record.state === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

export function toCriSandbox(r: SandboxRecord): PodSandbox {
  return {
    id: r.id,
    metadata: r.config.metadata,
    state: criSandboxState(r),
    createdAt: r.createdAt,
    labels: r.config.labels,
    annotations: r.config.annotations,
    runtimeHandler: r.runtimeHandler,
  };
}

export function toCriSandboxStatus(r: SandboxRecord): PodSandboxStatus {
  const [ip, ...more] = r.ips;
  return {
    id: r.id,
    metadata: r.config.metadata,
    state: criSandboxState(r),
    createdAt: r.createdAt,
    network: { ip: ip ?? '', additionalIps: more.map((a) => ({ ip: a })) },
    linux: { namespaces: { options: r.config.linux?.securityContext?.namespaceOptions } },
    labels: r.config.labels,
    annotations: r.config.annotations,
    runtimeHandler: r.runtimeHandler,
  };
}

/** The CRI filter: an ID (or unique prefix), a state, and labels that must all match. */
export function sandboxMatches(r: SandboxRecord, filter: PodSandboxFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.id && !r.id.startsWith(filter.id)) return false;
  if (filter.state && criSandboxState(r) !== filter.state.state) return false;
  return labelsMatch(r.config.labels, filter.labelSelector);
}
