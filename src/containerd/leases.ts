import { randomBytes } from 'node:crypto';
import type { CallContext } from './call';
import type { ContainerdConnection } from './connection';
import { LABELS, OWNER } from './labels';

/**
 * Leases this process holds right now, by connection. The ID is chosen here and
 * listed before the lease is created, so a sweep never takes a lease whose
 * Create is still on the wire.
 */
const held = new WeakMap<ContainerdConnection, Set<string>>();

function heldBy(conn: ContainerdConnection): Set<string> {
  let set = held.get(conn);
  if (!set) held.set(conn, (set = new Set()));
  return set;
}

/**
 * Deletes the adapter's leases that no call of this process holds: those of
 * an earlier process (killed mid-operation) and those whose delete failed
 * while containerd was down. Run once recovery has adopted or removed what
 * they guarded, so the snapshots and blobs nobody references go to GC now
 * rather than when the lease expires. Returns how many were released.
 */
export async function releaseStaleLeases(conn: ContainerdConnection, ctx: CallContext = {}): Promise<number> {
  const { leases } = await conn.leases.list({ filters: [`labels."${LABELS.owner}"==${OWNER}`] }, ctx);
  const mine = heldBy(conn);
  let released = 0;
  for (const lease of leases) {
    if (mine.has(lease.id)) continue;
    try {
      await conn.leases.delete({ id: lease.id, sync: false }, ctx);
      released++;
    } catch {
      // Gone meanwhile, or containerd went away again: the next pass retries.
    }
  }
  return released;
}

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
  const id = `cri-adapter-${randomBytes(12).toString('hex')}`;
  const mine = heldBy(conn);
  mine.add(id);
  try {
    await conn.leases.create({ id, labels: { 'containerd.io/gc.expire': expire, [LABELS.owner]: OWNER, ...opts.labels } }, ctx);
  } catch (err) {
    mine.delete(id);
    throw err;
  }
  // Deleting must happen even when the caller was cancelled: use a fresh context. A failed delete
  // (containerd down) is retried by releaseStaleLeases after the gap.
  const release = () =>
    conn.leases
      .delete({ id, sync: false }, { deadline: Date.now() + 30_000 })
      .catch(() => undefined)
      .finally(() => mine.delete(id));
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

