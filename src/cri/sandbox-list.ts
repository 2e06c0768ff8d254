import type {
  PodSandbox,
  PodSandboxFilter,
  ListPodSandboxRequest,
  ListPodSandboxResponse,
  StreamPodSandboxesRequest,
  StreamPodSandboxesResponse,
} from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import { sendInBatches, StreamHandler, UnaryHandler } from './dispatch';
import { sandboxMatches, toCriSandbox } from './sandbox-mapping';

function listed(deps: CriDeps, filter: PodSandboxFilter | undefined): PodSandbox[] {
  return deps.sandboxes.list().filter((r) => sandboxMatches(r, filter)).map(toCriSandbox);
}

export function listPodSandboxHandler(deps: CriDeps): UnaryHandler<ListPodSandboxRequest, ListPodSandboxResponse> {
  return async (request) => ({
    items: listed(deps, request.filter),
  });
}

/** Takes one snapshot of the list, so each sandbox is sent once even while pods come and go. */
export function streamPodSandboxesHandler(deps: CriDeps): StreamHandler<StreamPodSandboxesRequest, StreamPodSandboxesResponse> {
  return async (request, ctx, send) => {
    const items = listed(deps, request.filter);
    await sendInBatches(items, ctx, send, (podSandboxes) => ({ podSandboxes }));
  };
}
