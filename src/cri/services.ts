import type { ImageServiceServer, RuntimeServiceServer } from '../gen/runtime/v1/api';
import { UnavailableError } from '../errors';
import type { CriDeps } from './deps';
import { HandlerTable, implement } from './dispatch';
import { IMAGE_SERVICE, RUNTIME_SERVICE } from './wire-encoding';
import type { CriServer } from './server';
import { createContainerHandler } from './container-create';
import { getContainerEventsHandler } from './container-events';
import { attachHandler } from './container-attach';
import { execHandler } from './container-exec';
import { execSyncHandler } from './container-exec-sync';
import { listContainersHandler, streamContainersHandler } from './container-list';
import { removeContainerHandler } from './container-remove';
import { reopenContainerLogHandler } from './container-reopen-log';
import { startContainerHandler } from './container-start';
import { containerStatsHandler, listContainerStatsHandler, streamContainerStatsHandler } from './container-stats';
import { containerStatusHandler } from './container-status';
import { stopContainerHandler } from './container-stop';
import { updateContainerResourcesHandler } from './container-update-resources';
import { imageFsInfoHandler } from './image-fs-info';
import { listMetricDescriptorsHandler } from './metric-descriptors-list';
import { listImagesHandler, streamImagesHandler } from './image-list';
import { pullImageHandler } from './image-pull';
import { removeImageHandler } from './image-remove';
import { imageStatusHandler } from './image-status';
import { runtimeConfigHandler } from './runtime-config';
import { updateRuntimeConfigHandler } from './runtime-config-update';
import { listPodSandboxHandler, streamPodSandboxesHandler } from './sandbox-list';
import { listPodSandboxMetricsHandler, streamPodSandboxMetricsHandler } from './sandbox-metrics-list';
import { portForwardHandler } from './sandbox-port-forward';
import { removePodSandboxHandler } from './sandbox-remove';
import { runPodSandboxHandler } from './sandbox-run';
import { podSandboxStatusHandler } from './sandbox-status';
import { listPodSandboxStatsHandler, podSandboxStatsHandler, streamPodSandboxStatsHandler } from './sandbox-stats';
import { stopPodSandboxHandler } from './sandbox-stop';
import { updatePodSandboxResourcesHandler } from './sandbox-update-resources';
import { statusHandler } from './status';
import { versionHandler } from './version';

/**
 * The CRI surface, one line per implemented RPC. Anything not listed here
 * answers UNIMPLEMENTED with the RPC's name.
 */
export function runtimeHandlers(deps: CriDeps): HandlerTable<RuntimeServiceServer> {
  return {
    version: versionHandler(deps),
    status: statusHandler(deps),
    runtimeConfig: runtimeConfigHandler(deps),
    updateRuntimeConfig: updateRuntimeConfigHandler(deps),
    runPodSandbox: runPodSandboxHandler(deps),
    stopPodSandbox: stopPodSandboxHandler(deps),
    removePodSandbox: removePodSandboxHandler(deps),
    podSandboxStatus: podSandboxStatusHandler(deps),
    listPodSandbox: listPodSandboxHandler(deps),
    streamPodSandboxes: streamPodSandboxesHandler(deps),
    updatePodSandboxResources: updatePodSandboxResourcesHandler(deps),
    createContainer: createContainerHandler(deps),
    startContainer: startContainerHandler(deps),
    stopContainer: stopContainerHandler(deps),
    removeContainer: removeContainerHandler(deps),
    containerStatus: containerStatusHandler(deps),
    listContainers: listContainersHandler(deps),
    streamContainers: streamContainersHandler(deps),
    updateContainerResources: updateContainerResourcesHandler(deps),
    reopenContainerLog: reopenContainerLogHandler(deps),
    getContainerEvents: getContainerEventsHandler(deps),
    execSync: execSyncHandler(deps),
    exec: execHandler(deps),
    attach: attachHandler(deps),
    portForward: portForwardHandler(deps),
    containerStats: containerStatsHandler(deps),
    listContainerStats: listContainerStatsHandler(deps),
    streamContainerStats: streamContainerStatsHandler(deps),
    podSandboxStats: podSandboxStatsHandler(deps),
    listPodSandboxStats: listPodSandboxStatsHandler(deps),
    streamPodSandboxStats: streamPodSandboxStatsHandler(deps),
    listMetricDescriptors: listMetricDescriptorsHandler(deps),
    listPodSandboxMetrics: listPodSandboxMetricsHandler(deps),
    streamPodSandboxMetrics: streamPodSandboxMetricsHandler(deps),
  };
}

export function imageHandlers(deps: CriDeps): HandlerTable<ImageServiceServer> {
  return {
    listImages: listImagesHandler(deps),
    streamImages: streamImagesHandler(deps),
    imageStatus: imageStatusHandler(deps),
    pullImage: pullImageHandler(deps),
    removeImage: removeImageHandler(deps),
    imageFsInfo: imageFsInfoHandler(deps),
  };
}

/**
 * Calls that read or change pods, containers or images need the state
 * rebuilt from containerd; before that they fail fast with UNAVAILABLE (the
 * kubelet retries) instead of answering from an empty view.
 */
function gated<S>(deps: CriDeps, table: HandlerTable<S>, open: ReadonlyArray<keyof S>): HandlerTable<S> {
  const out: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(table) as Array<[string, (...a: unknown[]) => Promise<unknown>]>) {
    out[name] = open.includes(name as keyof S)
      ? handler
      : (...args: unknown[]) => {
          if (!deps.recovered()) {
            return Promise.reject(
              new UnavailableError('cri-adapter is not ready: containerd is unreachable or state is still being recovered; retry shortly'),
            );
          }
          return handler(...args);
        };
  }
  return out as HandlerTable<S>;
}

export function registerCriServices(server: CriServer, deps: CriDeps, drain: AbortSignal): void {
  server.addService(
    RUNTIME_SERVICE,
    implement(
      RUNTIME_SERVICE,
      'runtime.v1.RuntimeService',
      gated(deps, runtimeHandlers(deps), ['version', 'status', 'runtimeConfig']),
      deps.logger,
      drain,
    ),
  );
  server.addService(
    IMAGE_SERVICE,
    implement(IMAGE_SERVICE, 'runtime.v1.ImageService', gated(deps, imageHandlers(deps), []), deps.logger, drain),
  );
}
