import type { CallContext } from './call';
import type { ContainerdConnection } from './connection';

export interface LeaseOptions {
  /** containerd expires the lease by itself after this long, so a crash mid-operation leaks nothing for good. */
  expireAfterSeconds: number;
  labels?: Record<string, string>;
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
  try {
    return await fn({ ...ctx, lease: id });
  } finally {
    // Deleting must happen even when the caller was cancelled: use a fresh context.
    await conn.leases.delete({ id, sync: false }, { deadline: Date.now() + 30_000 }).catch(() => undefined);
  }
}
