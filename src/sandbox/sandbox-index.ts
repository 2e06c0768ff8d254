import { InvalidArgumentError, NotFoundError } from '../errors';
import type { SandboxRecord } from './model';

/**
 * The in-memory index of pod sandboxes, by ID. It is its own object so the
 * container and image domains can be given it at construction (they read
 * pods) before the sandbox service, which needs the container domain, exists.
 */
export class SandboxIndex extends Map<string, SandboxRecord> {
  /** An exact ID, or a unique prefix of at least 4 characters (crictl lets people type one). */
  find(id: string): SandboxRecord | undefined {
    const exact = this.get(id);
    if (exact || id.length < 4) return exact;
    const matches = [...this.values()].filter((s) => s.id.startsWith(id));
    return matches.length === 1 ? matches[0] : undefined;
  }

  /** For calls where an unknown pod is fine (stop, remove); an empty ID never is. */
  lookup(id: string): SandboxRecord | undefined {
    if (!id) throw new InvalidArgumentError('pod_sandbox_id is required');
    return this.find(id);
  }

  /** The one not-found rule for pods: an empty ID is the caller's mistake, an unknown one is NOT_FOUND. */
  require(id: string): SandboxRecord {
    const record = this.lookup(id);
    if (!record) throw new NotFoundError(`pod sandbox ${id} not found`);
    return record;
  }

  /** The kubelet's image GC must not take the image a pod was started from: which pod, if any, for RemoveImage's error. */
  imageUser(imageId: string): string | undefined {
    const pod = [...this.values()].find((s) => s.imageId === imageId);
    return pod && `pod sandbox ${pod.id} was started from it; remove the pod first`;
  }
}
