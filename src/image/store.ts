import type { ImageConfigFile } from '../oci/oci-types';
import { parseImageId, parseImageSpec, ParsedReference } from './reference';

// The OCI image config type is shared with the spec builders, which read the same blob.
export type { ImageConfigFile };

/** One image as the CRI sees it: an ID (config digest) with every name that points at it. */
export interface ImageEntry {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Bytes of the compressed layers, config and manifest(s) in the content store. */
  size: number;
  config: ImageConfigFile;
  /** Chain ID of the top layer: the parent snapshot of a container's rootfs. */
  chainId: string | undefined;
  /** The containerd image record names (tag, digest and ID records). */
  recordNames: string[];
}

/**
 * In-memory index of the adapter's images, rebuilt from containerd's image
 * records at start. ListImages and ImageStatus answer from here; the
 * kubelet asks for them on every pod sync.
 */
export class ImageStore {
  private readonly byId = new Map<string, ImageEntry>();
  /** containerd image record name -> image ID */
  private readonly byName = new Map<string, string>();

  list(): ImageEntry[] {
    return [...this.byId.values()];
  }

  get(id: string): ImageEntry | undefined {
    return this.byId.get(id);
  }

  /** Adds or replaces an image and points each of its names at it (a retagged name moves). */
  put(entry: ImageEntry): void {
    for (const name of entry.recordNames) {
      const previous = this.byName.get(name);
      if (previous && previous !== entry.id) this.dropName(previous, name);
      this.byName.set(name, entry.id);
    }
    const existing = this.byId.get(entry.id);
    if (existing) {
      const merged: ImageEntry = {
        ...entry,
        repoTags: union(existing.repoTags, entry.repoTags),
        repoDigests: union(existing.repoDigests, entry.repoDigests),
        recordNames: union(existing.recordNames, entry.recordNames),
      };
      this.byId.set(entry.id, merged);
    } else {
      this.byId.set(entry.id, entry);
    }
  }

  remove(id: string): ImageEntry | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    for (const name of entry.recordNames) this.byName.delete(name);
    this.byId.delete(id);
    return entry;
  }

  /** Every containerd image record name the store knows. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /**
   * Forgets record names that no longer exist in containerd (removed behind
   * the adapter's back); an image left with no record at all is gone.
   */
  forgetNames(names: Iterable<string>): ImageEntry[] {
    const gone: ImageEntry[] = [];
    for (const name of names) {
      const id = this.byName.get(name);
      if (!id) continue;
      this.byName.delete(name);
      this.dropName(id, name);
      const entry = this.byId.get(id);
      if (entry && entry.recordNames.length === 0) {
        this.byId.delete(id);
        gone.push(entry);
      }
    }
    return gone;
  }

  private dropName(id: string, name: string): void {
    const entry = this.byId.get(id);
    if (!entry) return;
    entry.recordNames = entry.recordNames.filter((n) => n !== name);
    entry.repoTags = entry.repoTags.filter((n) => n !== name);
    entry.repoDigests = entry.repoDigests.filter((n) => n !== name);
    // An image left with no name other than its ID record is still an image (crictl shows <none>).
  }

  /**
   * Finds an image by what the kubelet or a user may pass: its ID (full,
   * with or without `sha256:`), a tag reference in any spelling, or a digest
   * reference. Unparseable input finds nothing rather than failing: a lookup
   * is not a place to reject names.
   */
  resolve(input: string): ImageEntry | undefined {
    const id = parseImageId(input);
    if (id && this.byId.has(id)) return this.byId.get(id);
    let ref: ParsedReference;
    try {
      const spec = parseImageSpec(input);
      if (spec.kind === 'id') return this.byId.get(spec.id);
      ref = spec.reference;
    } catch {
      return this.resolvePrefix(input);
    }
    const byName = this.byName.get(ref.string());
    if (byName) return this.byId.get(byName);
    // `repo:tag@digest` is stored under its digest form only.
    if (ref.digest) {
      const digestName = `${ref.name}@${ref.digest}`;
      const found = this.byName.get(digestName);
      if (found) return this.byId.get(found);
    }
    return undefined;
  }

  /** crictl lets people type a unique prefix of an image ID. */
  private resolvePrefix(input: string): ImageEntry | undefined {
    const hex = input.replace(/^sha256:/, '');
    if (!/^[a-f0-9]{4,63}$/.test(hex)) return undefined;
    const matches = [...this.byId.keys()].filter((id) => id.startsWith(`sha256:${hex}`));
    return matches.length === 1 ? this.byId.get(matches[0]!) : undefined;
  }
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}
