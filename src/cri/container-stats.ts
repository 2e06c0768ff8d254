import {
  ContainerState,
  ContainerStats,
  ContainerStatsFilter,
  ContainerStatsRequest,
  ContainerStatsResponse,
  ListContainerStatsRequest,
  ListContainerStatsResponse,
  StreamContainerStatsRequest,
  StreamContainerStatsResponse,
} from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import { CriContext, sendInBatches, StreamHandler, UnaryHandler } from './dispatch';
import { containerMatches } from './container-mapping';
import { toCriContainerStats } from './stats-mapping';

/** ContainerStats: any container the adapter knows; CPU and memory only while it runs. */
export function containerStatsHandler(deps: CriDeps): UnaryHandler<ContainerStatsRequest, ContainerStatsResponse> {
  return async (request, ctx) => {
    const record = deps.containers.require(request.containerId);
    const [usage] = await deps.stats.containers([record], { signal: ctx.signal, deadline: ctx.deadline });
    return { stats: toCriContainerStats(usage!) };
  };
}

/** The spec lists running containers only. */
async function listed(deps: CriDeps, filter: ContainerStatsFilter | undefined, ctx: CriContext): Promise<ContainerStats[]> {
  const all = deps.containers.list();
  deps.stats.forgetAllBut(new Set([...all.map((c) => c.id), ...deps.sandboxes.list().map((s) => s.id)]));
  const records = all.filter((r) =>
    containerMatches(r, {
      id: filter?.id ?? '',
      podSandboxId: filter?.podSandboxId ?? '',
      labelSelector: filter?.labelSelector ?? {},
      state: { state: ContainerState.CONTAINER_RUNNING },
    }),
  );
  const usage = await deps.stats.containers(records, { signal: ctx.signal, deadline: ctx.deadline });
  return usage.map(toCriContainerStats);
}

export function listContainerStatsHandler(deps: CriDeps): UnaryHandler<ListContainerStatsRequest, ListContainerStatsResponse> {
  return async (request, ctx) => ({ stats: await listed(deps, request.filter, ctx) });
}

export function streamContainerStatsHandler(deps: CriDeps): StreamHandler<StreamContainerStatsRequest, StreamContainerStatsResponse> {
  return async (request, ctx, send) => {
    const items = await listed(deps, request.filter, ctx);
    await sendInBatches(items, ctx, send, (containerStats) => ({ containerStats }));
  };
}
