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
  /** A lease made ahead may be used (see takeReadyLease); not with `labels`. */
  madeAhead?: boolean;
}

/** Leases kept made ahead per connection, and how long each lives from its creation. */
const READY_LEASES = 2;
const READY_LEASE_SECONDS = 1800;

interface ReadyLeases {
  leases: { id: string; expiresAt: number }[];
  filling: boolean;
}

const ready = new WeakMap<ContainerdConnection, ReadyLeases>();

function newLeaseId(): string {
  return `cri-adapter-${randomBytes(12).toString('hex')}`;
}

function deleteLease(conn: ContainerdConnection, id: string, withinMs = 30_000): Promise<void> {
  // Deleting must happen even when the caller was cancelled: a fresh context. A failed delete
  // (containerd down) is retried by releaseStaleLeases after the gap.
  return conn.leases
    .delete({ id, sync: false }, { deadline: Date.now() + withinMs })
    .then(() => undefined, () => undefined)
    .finally(() => heldBy(conn).delete(id));
}

/**
 * Tops the connection's made-ahead leases up to READY_LEASES, one Create at
 * a time, in the background. A failure (containerd down) leaves fewer; the
 * next take tries again.
 */
function refillReadyLeases(conn: ContainerdConnection): void {
  let pool = ready.get(conn);
  if (!pool) ready.set(conn, (pool = { leases: [], filling: false }));
  if (pool.filling) return;
  const filling = pool;
  filling.filling = true;
  void (async () => {
    try {
      while (filling.leases.length < READY_LEASES) {
        const id = newLeaseId();
        const expiresAt = Date.now() + READY_LEASE_SECONDS * 1000;
        heldBy(conn).add(id);
        try {
          await conn.leases.create(
            { id, labels: { 'containerd.io/gc.expire': new Date(expiresAt).toISOString(), [LABELS.owner]: OWNER } },
            { deadline: Date.now() + 10_000 },
          );
        } catch {
          heldBy(conn).delete(id);
          return;
        }
        filling.leases.push({ id, expiresAt });
      }
    } finally {
      filling.filling = false;
    }
  })();
}

/**
 * A lease created earlier that lives at least `seconds` more, or undefined
 * (none ready yet, or all too old); either way the supply is topped up.
 * CreateContainer's Leases.Create round trip (about 1.3 ms of a 10 ms call)
 * then happens between calls instead of in one.
 */
function takeReadyLease(conn: ContainerdConnection, seconds: number): string | undefined {
  const pool = ready.get(conn);
  let taken: string | undefined;
  while (pool?.leases.length && !taken) {
    const lease = pool.leases.shift()!;
    if (lease.expiresAt - Date.now() >= seconds * 1000) taken = lease.id;
    else void deleteLease(conn, lease.id);
  }
  refillReadyLeases(conn);
  return taken;
}

/**
 * Forgets the made-ahead leases and deletes them, giving up after 2 s (a
 * stopping daemon must not wait on a containerd that is gone; what is left
 * expires or goes in the next start's sweep).
 */
export function dropReadyLeases(conn: ContainerdConnection): Promise<void> {
  const pool = ready.get(conn);
  const ids = pool?.leases.splice(0).map((l) => l.id) ?? [];
  return Promise.all(ids.map((id) => deleteLease(conn, id, 2000))).then(() => undefined);
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
  const mine = heldBy(conn);
  let id = opts.madeAhead && !opts.labels ? takeReadyLease(conn, opts.expireAfterSeconds) : undefined;
  if (!id) {
    id = newLeaseId();
    const expire = new Date(Date.now() + opts.expireAfterSeconds * 1000).toISOString();
    mine.add(id);
    try {
      await conn.leases.create({ id, labels: { 'containerd.io/gc.expire': expire, [LABELS.owner]: OWNER, ...opts.labels } }, ctx);
    } catch (err) {
      mine.delete(id);
      throw err;
    }
  }
  const leaseId = id;
  const release = () => deleteLease(conn, leaseId);
  let result: T;
  try {
    result = await fn({ ...ctx, lease: leaseId });
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

