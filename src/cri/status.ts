import type { RuntimeCondition, StatusRequest, StatusResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

// Condition names the kubelet looks for.
const RUNTIME_READY = 'RuntimeReady';
const NETWORK_READY = 'NetworkReady';

/**
 * Answers from state the daemon already tracks (the containerd health probe
 * and the CNI config watcher), so the kubelet's frequent polling costs no
 * call to containerd.
 */
export function statusHandler(deps: CriDeps): UnaryHandler<StatusRequest, StatusResponse> {
  return async (request) => {
    const { containerd, cni, config } = deps;
    const runtime: RuntimeCondition = !containerd.ready
      ? {
          type: RUNTIME_READY,
          status: false,
          reason: 'ContainerdNotReady',
          message: `containerd at ${containerd.address} is not answering: ${containerd.notReadyReason}`,
        }
      : !deps.recovered()
        ? { type: RUNTIME_READY, status: false, reason: 'Recovering', message: 'rebuilding state from containerd' }
        : { type: RUNTIME_READY, status: true, reason: '', message: '' };
    const network: RuntimeCondition = cni.network
      ? { type: NETWORK_READY, status: true, reason: '', message: '' }
      : { type: NETWORK_READY, status: false, reason: 'NetworkPluginNotReady', message: cni.notReadyReason };

    // The default handler is reported under its own name and as "" (the CRI's name for the default).
    const handlerNames = ['', ...Object.keys(config.runtimes)];
    const info: Record<string, string> = {};
    if (request.verbose) {
      info.config = JSON.stringify({
        containerdAddress: containerd.address,
        containerdNamespace: containerd.namespace,
        runtimes: config.runtimes,
        defaultRuntime: config.defaultRuntime,
        cgroupDriver: config.cgroupDriver,
        snapshotter: config.snapshotter,
        sandboxImage: config.sandboxImage,
        cni: config.cni,
      });
      info.containerd = JSON.stringify({ ready: containerd.ready, ...containerd.lastSeenVersion });
      info.cniConfig = cni.network ? cni.network.raw : JSON.stringify(null);
      info.runtimeFeatures = JSON.stringify(Object.fromEntries(deps.runtimeFeatures));
      info.lastCNILoadStatus = JSON.stringify(cni.network ? 'OK' : cni.notReadyReason);
    }
    return {
      status: { conditions: [runtime, network] },
      info,
      runtimeHandlers: handlerNames.map((name) => ({
        name,
        features: {
          // Probed from the handler's own runc at start ("" is the default handler).
          recursiveReadOnlyMounts: deps.runtimeFeatures.get(name || config.defaultRuntime)?.recursiveReadOnlyMounts ?? false,
          // The kernel allows user namespaces; pods get them through the pause process (no idmapped mounts needed).
          userNamespaces: deps.env.userNamespaces ?? false,
        },
      })),
      // Supplemental groups are resolved by the adapter (oci/user.ts) and runc sets exactly those.
      features: { supplementalGroupsPolicy: true, userNamespacesHostNetwork: false, mountOptions: false },
    };
  };
}
