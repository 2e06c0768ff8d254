import type {
  ListContainersRequest,
  ListContainersResponse,
  StreamContainersRequest,
  StreamContainersResponse,
} from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { StreamHandler, UnaryHandler } from './dispatch';
import { containerMatches, toCriContainer } from './container-mapping';

const PER_MESSAGE = 200;

export function listContainersHandler(deps: CriDeps): UnaryHandler<ListContainersRequest, ListContainersResponse> {
  return async (request) => ({
    containers: deps.containers.list().filter((c) => containerMatches(c, request.filter)).map(toCriContainer),
  });
}

/** One snapshot of the list, so each container is sent exactly once. */
export function streamContainersHandler(deps: CriDeps): StreamHandler<StreamContainersRequest, StreamContainersResponse> {
  return async (request, ctx, send) => {
    const items = deps.containers.list().filter((c) => containerMatches(c, request.filter)).map(toCriContainer);
    for (let i = 0; i < items.length && !ctx.signal.aborted; i += PER_MESSAGE) {
      await send({ containers: items.slice(i, i + PER_MESSAGE) });
    }
  };
}
