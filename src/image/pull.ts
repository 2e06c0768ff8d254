import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { CallContext } from '../containerd/call';
import type { ContainerdConnection } from '../containerd/connection';
import { blobExists, setBlobLabels, writeBlob } from '../containerd/content';
import { withLease } from '../containerd/leases';
import { AdapterError, AlreadyExistsError, CancelledError, DigestMismatchError, InvalidArgumentError, withContext } from '../errors';
import type { Descriptor as ContainerdDescriptor } from '../gen/containerd/types/descriptor';
import type { Logger } from '../log/logger';
import { imagePulls } from '../metrics';
import { chainIds, configGcLabels, indexGcLabel, manifestGcLabels, UNCOMPRESSED_LABEL } from './layers';
import type { ParsedReference } from './reference';
import type { AuthConfig, Descriptor, ImageIndex, ImageSource, ResolvedImage } from './registry';
import type { ImageConfigFile, ImageEntry } from './store';
import { unpackLayers } from './unpack';


/** Every ingest ref of a pull starts with this, so a later process can abort a dead one's. */
export const PULL_INGEST_PREFIX = 'cri-adapter-pull-';

/** Label on the adapter's containerd image records, so they can be told from others in the namespace. */
export const MANAGED_IMAGE_LABEL = 'io.cri-adapter.image';

export interface PullSettings {
  snapshotter: string;
  maxConcurrentDownloads: number;
  /** A pull's lease expires by itself after this long, in case the adapter dies mid-pull. */
  leaseExpirySeconds: number;
}

function toContainerdDescriptor(d: Descriptor): ContainerdDescriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: BigInt(d.size), annotations: d.annotations ?? {} };
}

/** A promise settled from outside, at most once. */
function settleable(): { promise: Promise<void>; done: () => void; fail: (err: Error) => void } {
  let done!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    done = resolve;
    fail = reject;
  });
  promise.catch(() => undefined);
  return { promise, done, fail };
}

/**
 * Runs `fn` over items with at most `limit` in flight. On the first failure
 * no further item starts, `onFailure` runs (to cancel the ones in flight),
 * and the first error is thrown once every started item has settled: a
 * failed pull must not leave downloads running after it has answered.
 */
async function boundedAll<T>(items: T[], limit: number, fn: (item: T) => Promise<void>, onFailure: () => void): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (!failure && next < items.length) {
      try {
        await fn(items[next++]!);
      } catch (error) {
        if (!failure) {
          failure = { error };
          onFailure();
        }
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.error;
}

/**
 * Blobs being written by a pull of this process, per namespace and digest.
 * Two pulls that share a layer (pods of different images started together)
 * must not write it at once: containerd locks the ingest ref, and the
 * second writer's abort of a stale ingest would break the first.
 */
const blobWrites = new Map<string, Promise<void>>();

/**
 * Pulls one image the way containerd's own client does: resolve and fetch
 * from the registry, write every blob into the content store with the GC
 * labels that tie them together, unpack the layers into the snapshotter,
 * then point image records at it. Everything happens under one lease, so
 * nothing in flight is collected, and a failed pull leaves nothing that an
 * image record holds on to.
 */
export async function pullImage(
  ...args: Parameters<typeof pullImageOnce>
): Promise<ImageEntry> {
  const started = performance.now();
  try {
    const entry = await pullImageOnce(...args);
    imagePulls.succeeded((performance.now() - started) / 1000);
    return entry;
  } catch (err) {
    // The error's kind is a small fixed set (NotFound, FailedPrecondition for auth, DeadlineExceeded, ...).
    imagePulls.failed(err instanceof AdapterError ? err.kind : 'Internal');
    throw err;
  }
}

async function pullImageOnce(
  conn: ContainerdConnection,
  source: ImageSource,
  settings: PullSettings,
  ref: ParsedReference,
  auth: AuthConfig | undefined,
  ctx: CallContext,
  logger: Logger,
): Promise<ImageEntry> {
  const started = Date.now();
  const resolved = await source.resolveImage(ref, ctx.signal, { auth });

  return withLease(conn, { expireAfterSeconds: settings.leaseExpirySeconds }, ctx, async (lctx) => {
    // Cancels the layer downloads still running when one of them fails.
    const failed = new AbortController();
    const signal = ctx.signal ? AbortSignal.any([ctx.signal, failed.signal]) : failed.signal;
    const wctx = { ...lctx, signal };
    const store: StoreBlob = async (desc, labels, body) => {
      const key = `${conn.namespace}\n${desc.digest}`;
      for (let other = blobWrites.get(key); other; other = blobWrites.get(key)) await other.catch(() => undefined);
      let release!: () => void;
      blobWrites.set(key, new Promise<void>((resolve) => (release = resolve)));
      try {
        // Content an earlier image left behind (one just removed, say) is referenced by nothing
        // until this pull's records are written; the lease keeps GC from taking it meanwhile.
        // (Asking again after leasing: GC may have taken it between the two calls.)
        let exists = await blobExists(conn, desc.digest, lctx);
        if (exists) {
          await conn.leases.addResource({ id: lctx.lease!, resource: { id: desc.digest, type: 'content' } }, lctx);
          exists = await blobExists(conn, desc.digest, lctx);
        }
        if (exists) {
          if (Object.keys(labels).length) await setBlobLabels(conn, desc.digest, labels, lctx);
          return;
        }
        await writeBlob(
          conn,
          {
            ref: `${PULL_INGEST_PREFIX}${desc.digest}`,
            digest: desc.digest,
            size: desc.size,
            labels,
            source: await body(),
            onIngestLingers: (ingest) => logger.warn('a failed blob write left its ingest behind', { image: ref.string(), digest: desc.digest, ingest }),
          },
          wctx,
        ).catch((err: unknown) => {
          throw err instanceof DigestMismatchError ? withContext(err, `pull of ${ref.string()} from ${ref.domain}`) : err;
        });
        imagePulls.bytes(desc.size);
      } finally {
        blobWrites.delete(key);
        release();
      }
    };
    // Layers are not hashed here: containerd hashes what it is sent and refuses a commit whose
    // digest is not the expected one (a DigestMismatchError from writeBlob, given the pull's name below).
    const fetch = (desc: Descriptor) => async () => (await source.fetchBlob(ref, desc, signal, { auth, verify: false })).stream;

    // The config names the layers' uncompressed digests, which unpacking and GC labels need.
    const configBytes = await readAll((await source.fetchBlob(ref, resolved.config, ctx.signal, { auth })).stream);
    const config = parseConfig(configBytes, ref);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== resolved.layers.length) {
      throw new InvalidArgumentError(
        `image ${ref.string()}: config lists ${diffIds.length} layer diff IDs but the manifest has ${resolved.layers.length} layers`,
      );
    }

    // Each layer is unpacked as soon as it and the layers below it are stored, while the layers
    // above it are still downloading (a layer's blob must be complete before containerd can apply it).
    const layers = resolved.layers.map((layer, i) => ({ layer, diffId: diffIds[i]!, stored: settleable() }));
    const stopAll = () => {
      failed.abort(new CancelledError('another download or unpack of this pull failed'));
      for (const l of layers) l.stored.fail(new CancelledError('the pull stopped before this layer was stored'));
    };
    const downloads = boundedAll(
      layers,
      settings.maxConcurrentDownloads,
      async ({ layer, diffId, stored }) => {
        await store(layer, { [UNCOMPRESSED_LABEL]: diffId }, fetch(layer));
        stored.done();
      },
      stopAll,
    );
    const unpacked = unpackLayers(
      conn,
      settings.snapshotter,
      layers.map(({ layer, diffId }) => ({ blob: toContainerdDescriptor(layer), diffId })),
      wctx,
      (i) => layers[i]!.stored.promise,
    );
    unpacked.catch(stopAll);
    // The config, manifest and indexes are stored while the layers download: their GC labels
    // name the top snapshot (known from the diff IDs) and the layers, which the lease holds
    // until the image records below refer to all of it.
    const topChainId = chainIds(diffIds).at(-1);
    const described = storeDescriptions(resolved, configBytes, topChainId, settings.snapshotter, store);
    described.catch(stopAll);
    const [downloaded, unpackedResult, describedResult] = await Promise.allSettled([downloads, unpacked, described]);
    // A failed download is the cause when several failed (the unpack then only waited for it).
    for (const r of [downloaded, unpackedResult, describedResult]) if (r.status === 'rejected') throw r.reason;

    const entry = entryFor(ref, resolved, config, configBytes.length, topChainId);
    await writeImageRecords(conn, entry, toContainerdDescriptor(resolved.target), lctx);
    logger.info('pulled image', {
      image: ref.string(),
      imageId: entry.id,
      layers: resolved.layers.length,
      bytes: entry.size,
      ms: Date.now() - started,
    });
    return entry;
  });
}

type StoreBlob = (desc: Descriptor, labels: Record<string, string>, body: () => Promise<Readable>) => Promise<void>;

/**
 * The image's config, manifest and the indexes walked to it, each with the
 * GC labels that keep what it refers to. Each index keeps only the child
 * that was walked (the one for this platform).
 */
async function storeDescriptions(
  resolved: ResolvedImage,
  configBytes: Buffer,
  topChainId: string | undefined,
  snapshotter: string,
  store: StoreBlob,
): Promise<void> {
  const manifest = resolved.manifest;
  const walked = [...resolved.indexes.map((i) => i.digest), manifest.digest];
  await Promise.all([
    store(resolved.config, configGcLabels(snapshotter, topChainId), async () => Readable.from([configBytes])),
    store(manifest.descriptor, manifestGcLabels(resolved.config.digest, resolved.layers.map((l) => l.digest)), async () =>
      Readable.from([manifest.raw]),
    ),
    ...resolved.indexes.map((index, i) => {
      const child = walked[i + 1]!;
      const position = (index.json as ImageIndex).manifests.findIndex((m) => m.digest === child);
      return store(index.descriptor, position >= 0 ? indexGcLabel(position, child) : {}, async () => Readable.from([index.raw]));
    }),
  ]);
}

function parseConfig(bytes: Buffer, ref: ParsedReference): ImageConfigFile {
  try {
    return JSON.parse(bytes.toString('utf8')) as ImageConfigFile;
  } catch (err) {
    throw new InvalidArgumentError(`image ${ref.string()}: its config blob is not valid JSON (${(err as Error).message})`);
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream as AsyncIterable<Buffer>) parts.push(p);
  return Buffer.concat(parts);
}

/** The names an image is recorded under, as containerd's CRI plugin keeps them: tag, digest and ID. */
export function recordNamesFor(ref: ParsedReference, targetDigest: string, imageId: string): {
  tags: string[];
  digests: string[];
  names: string[];
} {
  const tags = ref.tag ? [`${ref.name}:${ref.tag}`] : [];
  const digests = [`${ref.name}@${targetDigest}`];
  return { tags, digests, names: [...tags, ...digests, imageId] };
}

function entryFor(
  ref: ParsedReference,
  resolved: ResolvedImage,
  config: ImageConfigFile,
  configSize: number,
  chainId: string | undefined,
): ImageEntry {
  const id = resolved.config.digest;
  const { tags, digests, names } = recordNamesFor(ref, resolved.target.digest, id);
  const size =
    configSize +
    resolved.manifest.raw.length +
    resolved.indexes.reduce((n, i) => n + i.raw.length, 0) +
    resolved.layers.reduce((n, l) => n + l.size, 0);
  return { id, repoTags: tags, repoDigests: digests, size, config, chainId, recordNames: names };
}

/** Creates the image records, or moves existing ones (a re-pushed tag) to the new target. */
async function writeImageRecords(
  conn: ContainerdConnection,
  entry: ImageEntry,
  target: ContainerdDescriptor,
  ctx: CallContext,
): Promise<void> {
  const labels = { [MANAGED_IMAGE_LABEL]: 'managed' };
  await Promise.all(
    entry.recordNames.map(async (name) => {
      const image = { name, labels, target, createdAt: undefined, updatedAt: undefined };
      try {
        await conn.images.create({ image }, ctx);
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
        await conn.images.update({ image, updateMask: ['target', `labels.${MANAGED_IMAGE_LABEL}`] }, ctx);
      }
    }),
  );
}
