import type { CallContext } from './call';
import type { ContainerdConnection } from './connection';

export interface LeaseOptions {
  /** containerd expires the lease by itself after this long, so a crash mid-operation leaks nothing for good. */
  expireAfterSeconds: number;
  labels?: Record<string, string>;
  /** After success, delete the lease without waiting for it (see withLease). */
  releaseInBackground?: boolean;
}

/**
 * Runs `fn` under a fresh containerd lease: content and snapshots created
 * with the lease in the call context cannot be garbage-collected until the
 * lease goes. The lease is deleted afterwards whatever happened; what it
 * alone protected (the leftovers of a failed pull) is then collected by
 * containerd's GC, and what an image record references stays.
 */
export async function withLease<T>(
  conn: ContainerdConnection,
  opts: LeaseOptions,
  ctx: CallContext,
  fn: (leaseCtx: CallContext) => Promise<T>,
): Promise<T> {
  const expire = new Date(Date.now() + opts.expireAfterSeconds * 1000).toISOString();
  const { lease } = await conn.leases.create({ id: '', labels: { 'containerd.io/gc.expire': expire, ...opts.labels } }, ctx);
  const id = lease!.id;
  // Deleting must happen even when the caller was cancelled: use a fresh context.
  const release = () => conn.leases.delete({ id, sync: false }, { deadline: Date.now() + 30_000 }).catch(() => undefined);
  let result: T;
  try {
    result = await fn({ ...ctx, lease: id });
  } catch (err) {
    await release();
    throw err;
  }
  // Once what the lease protected is referenced from elsewhere, nobody needs to wait for its
  // deletion (a round trip); if it fails, the lease still expires on its own.
  if (opts.releaseInBackground) void release();
  else await release();
  return result;
}

