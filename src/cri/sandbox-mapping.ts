import { PodSandbox, PodSandboxFilter, PodSandboxState, PodSandboxStatus } from '../gen/runtime/v1/api';
import { SandboxRecord } from '../sandbox/model';
import { labelsMatch } from '../util/label-selector';
import { memoByRecord } from '../util/memo';

export function criSandboxState(record: SandboxRecord): PodSandboxState {
  return record.state === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

/**
 * Listed every second for every pod: built once and reused (with its
 * encoding, see wire-encoding.ts) until the state or the config (replaced,
 * never edited) changes.
 */
export const toCriSandbox = memoByRecord(
  (r: SandboxRecord) => [r.state, r.config],
  (r: SandboxRecord): PodSandbox => ({
    id: r.id,
    metadata: r.config.metadata,
    state: criSandboxState(r),
    createdAt: r.createdAt,
    labels: r.config.labels,
    annotations: r.config.annotations,
    runtimeHandler: r.runtimeHandler,
  }),
);

/** Reused until the state, the config or the IPs (replaced, never edited) change. */
export const toCriSandboxStatus = memoByRecord(
  (r: SandboxRecord) => [r.state, r.config, r.ips],
  (r: SandboxRecord): PodSandboxStatus => {
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
  },
);

/** The CRI filter: an ID (or unique prefix), a state, and labels that must all match. */
export function sandboxMatches(r: SandboxRecord, filter: PodSandboxFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.id && !r.id.startsWith(filter.id)) return false;
  if (filter.state && criSandboxState(r) !== filter.state.state) return false;
  return labelsMatch(r.config.labels, filter.labelSelector);
}
