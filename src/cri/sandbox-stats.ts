import type {
  ListPodSandboxStatsRequest,
  ListPodSandboxStatsResponse,
  PodSandboxStats,
  PodSandboxStatsFilter,
  PodSandboxStatsRequest,
  PodSandboxStatsResponse,
  StreamPodSandboxStatsRequest,
  StreamPodSandboxStatsResponse,
} from '../gen/runtime/v1/api';
import { PodSandboxState } from '../gen/runtime/v1/api';
import type { SandboxRecord } from '../sandbox/model';
import type { CriDeps } from './deps';
import { CriContext, sendInBatches, StreamHandler, UnaryHandler } from './dispatch';
import { sandboxMatches } from './sandbox-mapping';
import { toCriPodSandboxStats } from './stats-mapping';

async function statsOf(deps: CriDeps, sandboxes: SandboxRecord[], ctx: CriContext): Promise<PodSandboxStats[]> {
  const usage = await deps.stats.sandboxes(sandboxes, (id) => deps.containers.ofSandbox(id), {
    signal: ctx.signal,
    deadline: ctx.deadline,
  });
  return usage.map(toCriPodSandboxStats);
}

/** PodSandboxStats: any pod the adapter knows; a stopped pod has attributes and no usage. */
export function podSandboxStatsHandler(deps: CriDeps): UnaryHandler<PodSandboxStatsRequest, PodSandboxStatsResponse> {
  return async (request, ctx) => {
    const record = deps.sandboxes.require(request.podSandboxId);
    const [stats] = await statsOf(deps, [record], ctx);
    return { stats };
  };
}

/** Ready pods only, as containerd's plugin does: a stopped pod has nothing running to measure. */
async function listed(deps: CriDeps, filter: PodSandboxStatsFilter | undefined, ctx: CriContext): Promise<PodSandboxStats[]> {
  const records = deps.sandboxes.list().filter((r) =>
    sandboxMatches(r, {
      id: filter?.id ?? '',
      labelSelector: filter?.labelSelector ?? {},
      state: { state: PodSandboxState.SANDBOX_READY },
    }),
  );
  return statsOf(deps, records, ctx);
}

export function listPodSandboxStatsHandler(deps: CriDeps): UnaryHandler<ListPodSandboxStatsRequest, ListPodSandboxStatsResponse> {
  return async (request, ctx) => ({ stats: await listed(deps, request.filter, ctx) });
}

export function streamPodSandboxStatsHandler(deps: CriDeps): StreamHandler<StreamPodSandboxStatsRequest, StreamPodSandboxStatsResponse> {
  return async (request, ctx, send) => {
    const items = await listed(deps, request.filter, ctx);
    await sendInBatches(items, ctx, send, (podSandboxStats) => ({ podSandboxStats }));
  };
}
