import { nowNs } from '../util/time';
import { RemappedSnapshots } from './remap';
import { promises as fs } from 'node:fs';
import type { CallContext } from '../containerd/call';
import type { ContainerdConnection } from '../containerd/connection';
import { readBlob } from '../containerd/content';
import { abortError, FailedPreconditionError, InvalidArgumentError, NotFoundError, unlessNotFound } from '../errors';
import type { EventMonitor } from '../events/monitor';
import type { Logger } from '../log/logger';
import { mountContaining, readMountinfo } from '../host/mountinfo';
import { chainIds } from './layers';
import { pullImage, PullSettings, recordNamesFor } from './pull';
import { parseImageId, parseReference } from './reference';
import {
  AuthConfig,
  Descriptor,
  ImageIndex,
  ImageManifest,
  ImageSource,
  isIndexMediaType,
  nodePlatform,
  selectPlatform,
} from './registry';
import { ImageConfigFile, ImageEntry, ImageStore } from './store';
import { quoteBounded } from '../util/quote';

export interface ImageServiceSettings extends PullSettings {
  sandboxImage: string;
}

export interface FsUsage {
  mountpoint: string;
  usedBytes: number;
  inodesUsed: number;
  timestamp: bigint;
}

/** One download that several PullImage callers wait for. */
interface SharedPull {
  promise: Promise<ImageEntry>;
  /** Aborted when the last waiting caller has gone. */
  controller: AbortController;
  waiters: number;
}

/**
 * The image domain: pulls, removal and lookups, with the in-memory store
 * kept in step with containerd's image records (the store of record).
 */
export class ImageService {
  private readonly inFlight = new Map<string, SharedPull>();
  /** Copies of image snapshots owned by a pod user namespace's IDs. */
  readonly remapped: RemappedSnapshots;

  constructor(
    private readonly conn: ContainerdConnection,
    readonly store: ImageStore,
    private readonly source: ImageSource,
    private readonly settings: ImageServiceSettings,
    private readonly logger: Logger,
    /**
     * Who holds the image (a pod started from it, a container mounting it),
     * in words for RemoveImage's error; undefined when nobody does.
     */
    private readonly userOf: (imageId: string) => string | undefined,
  ) {
    this.remapped = new RemappedSnapshots({ conn, snapshotter: settings.snapshotter, logger });
  }

  /**
   * After any gap in containerd's event stream (a containerd restart, however
   * quick, or a lost connection) containerd may hold other images than
   * before: the view is reloaded. The first resync comes with the
   * subscription made right after the initial load, and is skipped.
   */
  watch(events: EventMonitor): void {
    let resyncs = 0;
    events.on('resync', () => {
      if (resyncs++ === 0) return;
      this.load({}).catch((err: unknown) => this.logger.warn('image resync failed', { error: (err as Error).message }));
    });
  }

  /** The sandbox image is pinned: the kubelet's image GC must not remove it. */
  isPinned(entry: ImageEntry): boolean {
    const pinned = this.store.resolve(this.settings.sandboxImage);
    return pinned?.id === entry.id;
  }

  /**
   * Pulls an image. Two pulls of the same reference (and credentials) at once
   * share one download: the kubelet pulls per pod, and pods of a deployment
   * start together. The shared pull belongs to no single caller: one that
   * gives up (deadline, cancel) gets its error at once while the others keep
   * waiting, and the pull is cancelled only when every caller has gone.
   */
  pull(input: string, auth: AuthConfig | undefined, ctx: CallContext): Promise<ImageEntry> {
    if (input === '') throw new InvalidArgumentError('PullImage: image.image (the reference to pull) is required');
    const ref = parseReference(input);
    const key = `${ref.string()}\n${auth ? JSON.stringify(auth) : ''}`;
    let shared = this.inFlight.get(key);
    if (!shared) {
      const controller = new AbortController();
      const promise = pullImage(this.conn, this.source, this.settings, ref, auth, { signal: controller.signal }, this.logger)
        .then((entry) => {
          this.store.put(entry);
          return this.store.get(entry.id)!;
        })
        .finally(() => this.forget(key, created));
      // A pull every caller abandoned still settles; nobody may be left to observe it.
      promise.catch(() => undefined);
      const created: SharedPull = { promise, controller, waiters: 0 };
      shared = created;
      this.inFlight.set(key, shared);
    }
    return this.await(key, shared, ref.string(), ctx.signal);
  }

  private forget(key: string, shared: SharedPull): void {
    if (this.inFlight.get(key) === shared) this.inFlight.delete(key);
  }

  private await(key: string, shared: SharedPull, what: string, signal: AbortSignal | undefined): Promise<ImageEntry> {
    shared.waiters++;
    return new Promise<ImageEntry>((resolve, reject) => {
      const leave = () => {
        signal?.removeEventListener('abort', onAbort);
        shared.waiters--;
      };
      const onAbort = () => {
        leave();
        if (shared.waiters === 0) {
          // A caller arriving now starts afresh rather than joining a pull being cancelled.
          this.forget(key, shared);
          shared.controller.abort(signal!.reason);
        }
        reject(abortError(signal!.reason, `pull of ${what}`));
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      shared.promise.then(
        (entry) => {
          leave();
          resolve(entry);
        },
        (err: unknown) => {
          leave();
          reject(err);
        },
      );
    });
  }

  /** ImageStatus: the image an ID or reference names, or undefined when there is none (not an error). */
  find(input: string): ImageEntry | undefined {
    if (input === '') throw new InvalidArgumentError('ImageStatus: image.image is required');
    return this.store.resolve(input);
  }

  /** Removes every record of the image. Unknown images are not an error (the spec says so). */
  async remove(input: string, ctx: CallContext): Promise<void> {
    if (input === '') throw new InvalidArgumentError('RemoveImage: image.image (an ID or reference) is required');
    const entry = this.store.resolve(input);
    if (!entry) return;
    const user = this.userOf(entry.id);
    if (user) throw new FailedPreconditionError(`image ${quoteBounded(input)} (${entry.id}) is in use: ${user}`);
    for (const name of entry.recordNames) {
      await unlessNotFound(this.conn.images.delete({ name, sync: false }, ctx));
    }
    this.store.remove(entry.id);
    this.logger.info('removed image', { imageId: entry.id, names: entry.recordNames });
  }

  /** Rebuilds the store from containerd's image records (at start). */
  async load(ctx: CallContext): Promise<void> {
    // Names known before the listing: only these can have vanished. A pull that finishes while
    // the listing is under way adds names the listing may not show yet, and must keep them.
    const knownBefore = this.store.names();
    const { images } = await this.conn.images.list({ filters: [] }, ctx);
    const listed = new Set(images.map((i) => i.name));
    const gone = this.store.forgetNames(knownBefore.filter((n) => !listed.has(n)));
    for (const entry of gone) this.logger.info('image removed outside the adapter', { imageId: entry.id, names: entry.repoTags });
    const byTarget = new Map<string, string[]>();
    for (const image of images) {
      const digest = image.target?.digest;
      if (!digest) continue;
      byTarget.set(digest, [...(byTarget.get(digest) ?? []), image.name]);
    }
    for (const [targetDigest, names] of byTarget) {
      const mediaType = images.find((i) => i.target?.digest === targetDigest)!.target!.mediaType;
      try {
        const entry = await this.entryFromContent(targetDigest, mediaType, names, ctx);
        this.store.put(entry);
      } catch (err) {
        // One broken record must not hide the others; it is reported and left for an operator.
        this.logger.warn('skipping image record that cannot be read', { names, error: (err as Error).message });
      }
    }
    this.logger.info('images loaded', { count: this.store.list().length });
  }

  private async entryFromContent(targetDigest: string, mediaType: string, names: string[], ctx: CallContext): Promise<ImageEntry> {
    let size = 0;
    let manifestDigest = targetDigest;
    let manifestMediaType = mediaType;
    for (let depth = 0; isIndexMediaType(manifestMediaType); depth++) {
      if (depth > 4) throw new Error('index nesting too deep');
      const raw = await readBlob(this.conn, manifestDigest, ctx);
      size += raw.length;
      const index = JSON.parse(raw.toString('utf8')) as ImageIndex;
      const choice = selectPlatform(index.manifests, nodePlatform());
      if (!choice.descriptor) throw new Error(`no manifest for this platform in ${manifestDigest}`);
      manifestDigest = choice.descriptor.digest;
      manifestMediaType = choice.descriptor.mediaType;
    }
    const manifestRaw = await readBlob(this.conn, manifestDigest, ctx);
    const manifest = JSON.parse(manifestRaw.toString('utf8')) as ImageManifest;
    const config = JSON.parse((await readBlob(this.conn, manifest.config.digest, ctx)).toString('utf8')) as ImageConfigFile;
    size += manifestRaw.length + manifest.config.size + manifest.layers.reduce((n: number, l: Descriptor) => n + l.size, 0);
    const id = manifest.config.digest;
    const tags: string[] = [];
    const digests: string[] = [];
    for (const name of names) {
      if (parseImageId(name)) continue;
      try {
        const ref = parseReference(name);
        const recorded = recordNamesFor(ref, targetDigest, id);
        if (ref.digest) digests.push(...recorded.digests);
        else tags.push(...recorded.tags);
      } catch {
        // A name no CRI client could have written; keep it as a record only.
      }
    }
    const diffIds = config.rootfs?.diff_ids ?? [];
    return {
      id,
      repoTags: tags,
      repoDigests: [...new Set(digests)],
      size,
      config,
      chainId: chainIds(diffIds).pop(),
      recordNames: names,
    };
  }

  private usageMemo: { at: number; value: Promise<FsUsage> } | undefined;

  /**
   * The snapshotter's directory (from containerd's introspection) and how
   * much of it images and containers use. Walking the tree costs disk reads,
   * so one answer serves every caller for a few seconds (the kubelet asks
   * about every 10 s).
   */
  fsUsage(ctx: CallContext): Promise<FsUsage> {
    if (this.usageMemo && Date.now() - this.usageMemo.at < 5000) return this.usageMemo.value;
    const value = this.measureUsage(ctx);
    this.usageMemo = { at: Date.now(), value };
    value.catch(() => (this.usageMemo = undefined));
    return value;
  }

  private async measureUsage(ctx: CallContext): Promise<FsUsage> {
    const { root, mountpoint } = await this.snapshotterLocation(ctx);
    const used = await directoryUsage(root);
    return { mountpoint, usedBytes: used.bytes, inodesUsed: used.inodes, timestamp: nowNs() };
  }

  private locationMemo: Promise<{ root: string; mountpoint: string }> | undefined;

  /**
   * Where the snapshotter keeps images and containers' writable layers, and
   * the mount that holds it: the filesystem ID the kubelet matches image and
   * container filesystem stats by. Asked of containerd once.
   */
  snapshotterLocation(ctx: CallContext): Promise<{ root: string; mountpoint: string }> {
    this.locationMemo ??= (async () => {
      const { plugins } = await this.conn.introspection.plugins(
        { filters: [`type==io.containerd.snapshotter.v1,id==${this.settings.snapshotter}`] },
        ctx,
      );
      const root = plugins[0]?.exports?.root;
      if (!root) throw new NotFoundError(`containerd reports no root directory for snapshotter ${this.settings.snapshotter}`);
      return { root, mountpoint: mountpointOf(root) };
    })();
    this.locationMemo.catch(() => (this.locationMemo = undefined));
    return this.locationMemo;
  }
}

/** Walks a directory tree counting allocated bytes and inodes; hard links count once. */
async function directoryUsage(root: string): Promise<{ bytes: number; inodes: number }> {
  const seen = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const p = `${dir}/${name}`;
      const st = await fs.lstat(p).catch(() => undefined);
      if (!st) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inodes++;
      bytes += st.blocks * 512;
      if (st.isDirectory()) stack.push(p);
    }
  }
  return { bytes, inodes };
}

/** The mount point holding `path` (the root when mountinfo lists nothing above it). */
export function mountpointOf(path: string): string {
  return mountContaining(path, readMountinfo())?.mountpoint ?? '/';
}

