import type {
  Container,
  ContainerFilter,
  ListContainersRequest,
  ListContainersResponse,
  StreamContainersRequest,
  StreamContainersResponse,
} from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import { sendInBatches, StreamHandler, UnaryHandler } from './dispatch';
import { containerMatches, toCriContainer } from './container-mapping';

function listed(deps: CriDeps, filter: ContainerFilter | undefined): Container[] {
  return deps.containers.list().filter((r) => containerMatches(r, filter)).map(toCriContainer);
}

export function listContainersHandler(deps: CriDeps): UnaryHandler<ListContainersRequest, ListContainersResponse> {
  return async (request) => ({
    containers: listed(deps, request.filter),
  });
}

/** One snapshot of the list, so each container is sent exactly once. */
export function streamContainersHandler(deps: CriDeps): StreamHandler<StreamContainersRequest, StreamContainersResponse> {
  return async (request, ctx, send) => {
    const items = listed(deps, request.filter);
    await sendInBatches(items, ctx, send, (containers) => ({ containers }));
  };
}
