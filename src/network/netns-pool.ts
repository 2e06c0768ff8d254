/**
 * Network namespaces made ahead of RunPodSandbox, each with the sandbox ID
 * it will serve (the namespace's name derives from the ID, so recovery and
 * cleanup find it as they find any pod's). Making one costs two processes
 * (`ip netns add`, `ip link set lo up`, about 5 ms) on the path to the infra
 * task; a pod that finds one ready skips that. The pool refills one at a
 * time in the background.
 *
 * Each entry is a file `<dir>/<sandbox id>` written before its namespace is
 * made and removed when a RunPodSandbox takes it (after that call's own
 * marker is on disk), so namespaces of a pool that a crash left behind are
 * found and removed at the next start, and only this daemon's.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, promises as fs, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger';
import { createNetns, netnsNameFor, netnsPath, removeNetns } from './netns';

export interface PooledNetns {
  sandboxId: string;
  name: string;
  path: string;
}

export class NetnsPool {
  private readonly ready: PooledNetns[] = [];
  private filling: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly opts: { dir: string; size: number; logger: Logger },
  ) {}

  /** Removes what an earlier process's pool left, then fills the pool in the background. */
  async start(): Promise<void> {
    const leftovers = await fs.readdir(this.opts.dir).catch(() => [] as string[]);
    for (const id of leftovers.filter((f) => /^[0-9a-f]{64}$/.test(f))) {
      await removeNetns(netnsNameFor(id)).catch((err: unknown) =>
        this.opts.logger.warn('cannot remove a prepared network namespace an earlier process left', { podSandboxId: id, error: (err as Error).message }),
      );
      rmSync(path.join(this.opts.dir, id), { force: true });
    }
    this.refill();
  }

  /**
   * A prepared namespace and the sandbox ID it is named for, or undefined
   * when none is ready. Call `claimed` once the caller's own record of the
   * ID is on disk: from then on the pod's cleanup owns the namespace.
   */
  take(): (PooledNetns & { claimed: () => void }) | undefined {
    const entry = this.ready.shift();
    this.refill();
    if (!entry) return undefined;
    return { ...entry, claimed: () => rmSync(path.join(this.opts.dir, entry.sandboxId), { force: true }) };
  }

  /** Removes the namespaces still in the pool (daemon shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling;
    for (const entry of this.ready.splice(0)) {
      await removeNetns(entry.name).catch(() => undefined);
      rmSync(path.join(this.opts.dir, entry.sandboxId), { force: true });
    }
  }

  private refill(): void {
    if (this.filling || this.closed || this.opts.size <= 0) return;
    this.filling = (async () => {
      while (!this.closed && this.ready.length < this.opts.size) {
        const sandboxId = randomBytes(32).toString('hex');
        const name = netnsNameFor(sandboxId);
        mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
        writeFileSync(path.join(this.opts.dir, sandboxId), '', { mode: 0o600 });
        try {
          await createNetns(name);
        } catch (err) {
          rmSync(path.join(this.opts.dir, sandboxId), { force: true });
          // Tried again at the next take; pods meanwhile make their own.
          this.opts.logger.warn('cannot prepare a network namespace ahead; pods make their own', { error: (err as Error).message });
          return;
        }
        this.ready.push({ sandboxId, name, path: netnsPath(name) });
      }
    })().finally(() => {
      this.filling = undefined;
    });
  }
}
