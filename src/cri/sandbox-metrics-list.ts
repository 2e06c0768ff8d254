import type {
  ContainerMetrics,
  ListPodSandboxMetricsRequest,
  ListPodSandboxMetricsResponse,
  PodSandboxMetrics,
  StreamPodSandboxMetricsRequest,
  StreamPodSandboxMetricsResponse,
} from '../gen/runtime/v1/api';
import { buildMetrics, POD_CONTAINER_LABEL } from '../stats/cadvisor-metrics';
import type { MetricsUsage } from '../stats/service';
import { nowNs } from '../util/time';
import type { CriDeps } from './deps';
import { CriContext, sendInBatches, StreamHandler, UnaryHandler } from './dispatch';

/** Metrics of every ready pod and of its running containers, as the kubelet's /metrics/cadvisor shows them. */
async function podMetrics(deps: CriDeps, ctx: CriContext): Promise<PodSandboxMetrics[]> {
  const ready = deps.sandboxes.list().filter((r) => r.state === 'ready');
  const usage = await deps.stats.metrics(ready, (id) => deps.containers.ofSandbox(id), { signal: ctx.signal, deadline: ctx.deadline });
  return toPodSandboxMetrics(usage, nowNs());
}

function toPodSandboxMetrics(usage: MetricsUsage, now: bigint): PodSandboxMetrics[] {
  return usage.sandboxes.map((pod) => {
    const md = pod.record.config.metadata;
    const podName = md?.name ?? '';
    const namespace = md?.namespace ?? '';
    const containerMetrics: ContainerMetrics[] = pod.containers.map((c) => {
      const r = c.record;
      const layer = c.writableLayer;
      const fs = usage.filesystem;
      return {
        containerId: r.id,
        metrics: buildMetrics({
          labels: [r.id, r.name, r.imageRef, podName, namespace, r.config.metadata?.name ?? ''],
          nowNs: now,
          sample: c.sample,
          processes: usage.processes.get(r.id),
          filesystem: layer && fs && {
            mountpoint: layer.mountpoint,
            usedBytes: layer.usedBytes,
            capacityBytes: fs.capacityBytes,
            inodes: fs.inodes,
            inodesFree: fs.inodesFree,
          },
          spec: r.spec,
          startedAtNs: r.startedAt,
        }),
      };
    });
    return {
      podSandboxId: pod.record.id,
      metrics: buildMetrics({
        labels: [pod.record.id, pod.record.name, '', podName, namespace, POD_CONTAINER_LABEL],
        nowNs: now,
        sample: pod.sample,
        network: pod.network?.interfaces,
        startedAtNs: pod.record.createdAt,
      }),
      containerMetrics,
    };
  });
}

export function listPodSandboxMetricsHandler(deps: CriDeps): UnaryHandler<ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse> {
  return async (_request, ctx) => ({ podMetrics: await podMetrics(deps, ctx) });
}

export function streamPodSandboxMetricsHandler(deps: CriDeps): StreamHandler<StreamPodSandboxMetricsRequest, StreamPodSandboxMetricsResponse> {
  return async (_request, ctx, send) => {
    const items = await podMetrics(deps, ctx);
    await sendInBatches(items, ctx, send, (podSandboxMetrics) => ({ podSandboxMetrics }));
  };
}
