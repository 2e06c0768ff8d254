import type {
  ListPodSandboxRequest,
  ListPodSandboxResponse,
  StreamPodSandboxesRequest,
  StreamPodSandboxesResponse,
} from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { StreamHandler, UnaryHandler } from './dispatch';
import { sandboxMatches, toCriSandbox } from './sandbox-mapping';

const PER_MESSAGE = 200;

export function listPodSandboxHandler(deps: CriDeps): UnaryHandler<ListPodSandboxRequest, ListPodSandboxResponse> {
  return async (request) => ({
    items: deps.sandboxes.list().filter((r) => sandboxMatches(r, request.filter)).map(toCriSandbox),
  });
}

/** Takes one snapshot of the list, so each sandbox is sent once even while pods come and go. */
export function streamPodSandboxesHandler(deps: CriDeps): StreamHandler<StreamPodSandboxesRequest, StreamPodSandboxesResponse> {
  return async (request, ctx, send) => {
    const items = deps.sandboxes.list().filter((r) => sandboxMatches(r, request.filter)).map(toCriSandbox);
    for (let i = 0; i < items.length && !ctx.signal.aborted; i += PER_MESSAGE) {
      await send({ podSandboxes: items.slice(i, i + PER_MESSAGE) });
    }
  };
}
