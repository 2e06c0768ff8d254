import { mkdirSync, promises as fs, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Leftover<T> {
  id: string;
  data: T | undefined;
}

/**
 * Markers of multi-step creations (RunPodSandbox, CreateContainer), one
 * small file per object under the adapter's root dir, written before the
 * first step and removed when the object is complete or fully undone. A
 * marker without a call in flight is a leftover: an adapter killed midway,
 * or undo steps that could not run (containerd down). The reconcile pass at
 * start and after every gap undoes what leftovers name, then drops them.
 */
export class PendingCreations<T> {
  private readonly inFlight = new Set<string>();

  /** `onAbandon` runs when a marker is left behind, to schedule the pass that undoes it. */
  constructor(
    private readonly dir: string,
    private readonly onAbandon: () => void = () => undefined,
  ) {}

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  /**
   * Marks `id` as being created. Synchronous on purpose: a few hundred bytes
   * on the node's disk, and the marker must exist before any step runs.
   */
  begin(id: string, data: T): void {
    this.inFlight.add(id);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file(id)}.tmp`;
    writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 });
    renameSync(tmp, this.file(id));
  }

  /** The creation finished, or was undone completely: nothing is left to clean. */
  async end(id: string): Promise<void> {
    await fs.rm(this.file(id), { force: true });
    this.inFlight.delete(id);
  }

  /** The call is over but some undo failed: the marker stays for the next reconcile pass. */
  abandon(id: string): void {
    this.inFlight.delete(id);
    this.onAbandon();
  }

  isInFlight(id: string): boolean {
    return this.inFlight.has(id);
  }

  /** Markers whose creation is not running in this process. */
  async leftovers(): Promise<Leftover<T>[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return [];
    }
    const out: Leftover<T>[] = [];
    for (const name of names) {
      // Killed between write and rename: no step had run yet.
      if (name.endsWith('.json.tmp') && !this.inFlight.has(name.slice(0, -'.json.tmp'.length))) {
        await fs.rm(path.join(this.dir, name), { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -'.json'.length);
      if (this.inFlight.has(id)) continue;
      try {
        out.push({ id, data: JSON.parse(await fs.readFile(path.join(this.dir, name), 'utf8')) as T });
      } catch {
        // Unreadable (the disk): the ID alone still names what to undo.
        out.push({ id, data: undefined });
      }
    }
    return out;
  }
}

/**
 * Runs a leftover sweep (which returns how many leftovers remain) now or
 * soon, one pass at a time. What remains is tried again a few seconds later
 * while `canRetry()` holds; otherwise (containerd down) the caller's next
 * trigger (the resync when containerd is back) runs the next pass.
 */
export class LeftoverSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly sweepOnce: () => Promise<number>,
    private readonly canRetry: () => boolean,
    private readonly onError: (err: Error) => void,
    private readonly retryMs = 5000,
  ) {}

  /** One pass; a call during a pass waits for it and runs another (the trigger may be newer than the pass). */
  async run(): Promise<void> {
    while (this.running) await this.running;
    this.running = (async () => {
      const remaining = await this.sweepOnce().catch((err: unknown) => {
        this.onError(err as Error);
        return 1;
      });
      if (remaining > 0 && this.canRetry()) this.soon();
    })();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }

  soon(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, this.retryMs);
    this.timer.unref();
  }
}
