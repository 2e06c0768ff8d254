import type { ContainerEventKind } from '../container/context';
import type { ContainerRecord } from '../container/model';
import { ContainerEventType, GetEventsRequest, ContainerEventResponse } from '../gen/runtime/v1/api';
import { nowNs } from '../util/time';
import type { CriDeps } from './deps';
import type { StreamHandler } from './dispatch';
import { toCriContainerStatus } from './container-mapping';
import { toCriSandboxStatus } from './sandbox-mapping';

const TYPES: Record<ContainerEventKind, ContainerEventType> = {
  created: ContainerEventType.CONTAINER_CREATED_EVENT,
  started: ContainerEventType.CONTAINER_STARTED_EVENT,
  stopped: ContainerEventType.CONTAINER_STOPPED_EVENT,
  deleted: ContainerEventType.CONTAINER_DELETED_EVENT,
};

/**
 * GetContainerEvents: container lifecycle events as they happen, each with
 * the pod's status and its containers' statuses (the evented PLEG rebuilds
 * pod state from them). Events are queued per stream in order; the stream
 * lasts until the kubelet cancels it.
 */
export function getContainerEventsHandler(deps: CriDeps): StreamHandler<GetEventsRequest, ContainerEventResponse> {
  return async (_request, ctx, send) => {
    const queue: ContainerEventResponse[] = [];
    let wake: (() => void) | undefined;
    const onEvent = (kind: ContainerEventKind, record: ContainerRecord) => {
      const sandbox = deps.sandboxes.get(record.sandboxId);
      queue.push({
        containerId: record.id,
        containerEventType: TYPES[kind],
        createdAt: nowNs(),
        podSandboxStatus: sandbox ? toCriSandboxStatus(sandbox) : undefined,
        containersStatuses: [
          ...deps.containers.ofSandbox(record.sandboxId).map(toCriContainerStatus),
          // A deleted container is no longer listed, but its last status belongs in its own event.
          ...(kind === 'deleted' ? [toCriContainerStatus(record)] : []),
        ],
      });
      wake?.();
    };
    const unsubscribe = deps.containers.subscribe(onEvent);
    try {
      while (!ctx.signal.aborted) {
        while (queue.length) await send(queue.shift()!);
        await new Promise<void>((resolve) => {
          wake = resolve;
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
    }
  };
}
