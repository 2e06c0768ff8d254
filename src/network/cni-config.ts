import { EventEmitter } from 'node:events';
import { FSWatcher, promises as fs, watch } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger';

/** A CNI network configuration list, as plugins receive it (spec 1.0.0). */
export interface CniNetworkList {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
  /** The file it came from. */
  source: string;
  /** The file's bytes, kept for Status's verbose info. */
  raw: string;
}

const CONFIG_EXTENSIONS = new Set(['.conf', '.conflist', '.json']);

/**
 * Parses one config file. A single-plugin `.conf` is lifted into a list, as
 * libcni does, so the rest of the adapter handles one shape.
 */
export function parseNetworkConfig(source: string, raw: string): CniNetworkList {
  const doc = JSON.parse(raw) as Record<string, unknown>;
  if (typeof doc.name !== 'string' || doc.name === '') throw new Error('no "name"');
  const cniVersion = typeof doc.cniVersion === 'string' ? doc.cniVersion : '0.4.0';
  if (Array.isArray(doc.plugins)) {
    if (doc.plugins.length === 0) throw new Error('"plugins" is empty');
    for (const p of doc.plugins) {
      if (typeof p !== 'object' || p === null || typeof (p as { type?: unknown }).type !== 'string') {
        throw new Error('a plugin has no "type"');
      }
    }
    return { cniVersion, name: doc.name, plugins: doc.plugins as CniNetworkList['plugins'], source, raw };
  }
  if (typeof doc.type !== 'string') throw new Error('neither "plugins" nor "type"');
  const { name: _n, cniVersion: _v, ...plugin } = doc;
  return { cniVersion, name: doc.name, plugins: [plugin as CniNetworkList['plugins'][number]], source, raw };
}

/**
 * The network a directory configures: its first valid file in lexical
 * order, or why there is none (every invalid file named with its problem).
 */
export async function loadNetworkConfig(confDir: string): Promise<{ network?: CniNetworkList; problem: string }> {
  let names: string[];
  try {
    names = (await fs.readdir(confDir)).filter((n) => CONFIG_EXTENSIONS.has(path.extname(n))).sort();
  } catch (err) {
    return { problem: `cannot read CNI config dir ${confDir}: ${(err as Error).message}` };
  }
  const problems: string[] = [];
  for (const name of names) {
    const file = path.join(confDir, name);
    try {
      const raw = await fs.readFile(file, 'utf8');
      return { network: parseNetworkConfig(file, raw), problem: '' };
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  return {
    problem: problems.length ? `no valid CNI config in ${confDir} (${problems.join('; ')})` : `no CNI config file in ${confDir}`,
  };
}

/**
 * Keeps the node's network config current: the first valid file in lexical
 * order in confDir, as the kubelet's other runtimes pick it. The directory is
 * watched so a CNI daemonset that writes its config late makes the node
 * network-ready without restarting the adapter.
 */
export class CniConfigWatcher extends EventEmitter {
  private current: CniNetworkList | undefined;
  private problem = 'no network config loaded yet';
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;

  constructor(
    private confDir: string,
    private readonly logger: Logger,
  ) {
    super();
  }

  get network(): CniNetworkList | undefined {
    return this.current;
  }

  /** Why the network is not ready, for Status. */
  get notReadyReason(): string {
    return this.problem;
  }

  async start(): Promise<void> {
    await this.reload();
    this.watchDir();
    // The directory may not exist yet (watch then fails); a slow poll covers that and any missed event.
    this.pollTimer = setInterval(() => {
      if (!this.watcher) this.watchDir();
      void this.reload();
    }, 5000);
    this.pollTimer.unref();
  }

  private watchDir(): void {
    try {
      this.watcher = watch(this.confDir, () => void this.reload());
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined;
    }
  }

  /** Live reload: watches and loads another directory from now on. */
  async setConfDir(dir: string): Promise<void> {
    if (dir === this.confDir) return;
    this.confDir = dir;
    this.watcher?.close();
    this.watcher = undefined;
    this.watchDir();
    // A load of the old directory may be in flight; the next one reads the new directory.
    await this.reloading;
    await this.reload();
  }

  reload(): Promise<void> {
    // Coalesce bursts of fs events into one read at a time.
    this.reloading ??= this.load().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async load(): Promise<void> {
    const { network, problem } = await loadNetworkConfig(this.confDir);
    this.set(network, problem);
  }

  private set(network: CniNetworkList | undefined, problem: string): void {
    const changed = network?.raw !== this.current?.raw || network?.source !== this.current?.source;
    this.current = network;
    this.problem = problem;
    if (changed) {
      if (network) this.logger.info('CNI network config loaded', { network: network.name, file: network.source });
      else this.logger.warn('CNI network not ready', { reason: problem });
      this.emit('change', network);
    }
  }

  stop(): void {
    this.watcher?.close();
    if (this.pollTimer) clearInterval(this.pollTimer);
  }
}
