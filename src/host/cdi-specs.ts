import { FSWatcher, promises as fs, watch } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError } from '../errors';
import type { Logger } from '../log/logger';
import { CdiResolved, CdiSpec, parseCdiSpec, parseQualifiedName } from '../oci/cdi';
import { quoteBounded } from '../util/quote';

const SPEC_EXTENSIONS = new Set(['.json', '.yaml', '.yml']);
/** A spec file is a few KiB; a larger one is not read (it would be parsed on the event loop). */
const MAX_SPEC_BYTES = 4 << 20;
/** Files read per directory; anything past this is reported, not read. */
const MAX_SPEC_FILES = 1024;

/**
 * The CDI devices this node offers, from the spec files in the configured
 * directories (by default /etc/cdi, then /var/run/cdi). A device defined in
 * a later directory wins over the same name in an earlier one, as the CDI
 * library orders them; two files of one directory defining the same name
 * make that name unusable (reported, not guessed). The directories are
 * watched, and polled every few seconds, so a device plugin that writes its
 * spec late is seen without restarting the adapter.
 */
export class CdiSpecRegistry {
  private devices = new Map<string, CdiResolved>();
  private conflicts = new Map<string, string>();
  private problems: string[] = [];
  private watchers = new Map<string, FSWatcher>();
  private pollTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly dirs: readonly string[],
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.reload();
    this.watchDirs();
    this.pollTimer = setInterval(() => {
      this.watchDirs();
      void this.reload();
    }, 5000);
    this.pollTimer.unref();
  }

  stop(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.pollTimer) clearInterval(this.pollTimer);
  }

  /** The device of that fully-qualified name, if some spec file defines it (and only one per directory). */
  lookup = (name: string): CdiResolved | undefined => {
    const conflict = this.conflicts.get(name);
    if (conflict) throw new InvalidArgumentError(`CDI_devices: ${conflict}; remove one of the files`);
    return this.devices.get(name);
  };

  /**
   * Re-reads the spec files when a requested name is unknown: a file
   * written a moment ago may not have reached the watcher yet.
   */
  async refreshFor(names: readonly string[]): Promise<void> {
    if (names.some((n) => !this.devices.has(n) && !this.conflicts.has(n))) await this.reload();
  }

  /** Status(verbose): what is loaded and what was refused. */
  summary(): { devices: string[]; problems: string[] } {
    return { devices: [...this.devices.keys()].sort(), problems: [...this.problems, ...this.conflicts.values()] };
  }

  private watchDirs(): void {
    for (const dir of this.dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, () => void this.reload());
        w.on('error', () => {
          w.close();
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, w);
      } catch {
        // Not there (yet): the poll retries.
      }
    }
  }

  reload(): Promise<void> {
    if (this.reloading) {
      // A change during a read must not be lost: read once more after it.
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.again = false;
        await this.load();
      } while (this.again);
    })().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private async load(): Promise<void> {
    const devices = new Map<string, CdiResolved>();
    const conflicts = new Map<string, string>();
    const problems: string[] = [];
    for (const dir of this.dirs) {
      let names: string[];
      try {
        names = (await fs.readdir(dir)).filter((n) => SPEC_EXTENSIONS.has(path.extname(n))).sort();
      } catch {
        continue; // a missing directory is normal (no CDI devices there)
      }
      if (names.length > MAX_SPEC_FILES) {
        problems.push(`${dir}: ${names.length} spec files, only the first ${MAX_SPEC_FILES} read`);
        names = names.slice(0, MAX_SPEC_FILES);
      }
      const inDir = new Map<string, CdiResolved>();
      for (const name of names) {
        const file = path.join(dir, name);
        let spec: CdiSpec;
        try {
          spec = await readSpec(file);
        } catch (err) {
          problems.push(`${file}: ${(err as Error).message.slice(0, 300)}`);
          continue;
        }
        for (const device of spec.devices) {
          const qualified = `${spec.kind}=${device.name}`;
          if (!parseQualifiedName(qualified)) continue;
          const earlier = inDir.get(qualified);
          if (earlier) {
            conflicts.set(qualified, `CDI device ${quoteBounded(qualified)} is defined by both ${earlier.spec.source} and ${file}`);
            continue;
          }
          inDir.set(qualified, { spec, device });
        }
      }
      // A later directory overrides an earlier one, name by name.
      for (const [qualified, resolved] of inDir) {
        if (conflicts.has(qualified)) continue;
        devices.set(qualified, resolved);
      }
    }
    for (const name of conflicts.keys()) devices.delete(name);
    const before = [...this.devices.keys()].sort().join(',');
    const after = [...devices.keys()].sort().join(',');
    const newProblems = problems.join('\n') !== this.problems.join('\n');
    this.devices = devices;
    this.conflicts = conflicts;
    this.problems = problems;
    if (before !== after) this.logger.info('CDI devices loaded', { count: devices.size, dirs: this.dirs });
    if (newProblems && problems.length) this.logger.warn('CDI spec files refused', { problems: problems.slice(0, 10) });
  }
}

async function readSpec(file: string): Promise<CdiSpec> {
  const st = await fs.stat(file);
  if (!st.isFile()) throw new Error('not a regular file');
  if (st.size > MAX_SPEC_BYTES) throw new Error(`larger than ${MAX_SPEC_BYTES} bytes`);
  const text = await fs.readFile(file, 'utf8');
  // JSON is YAML too, but a .json file gets JSON's error messages.
  const doc: unknown = path.extname(file) === '.json' ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100 });
  return parseCdiSpec(doc, file);
}
