import type { AdapterConfig } from './load';
import { listSettings } from './load';

/**
 * Keys a running daemon applies on SIGHUP. Each is either read at the time
 * of use from the daemon's one configuration object (CNI bin dirs and plugin
 * timeout, ExecSync's output cap) or has a setter on the part that uses it
 * (log level, registry hosts directory and stall timeout, CNI conf dir,
 * metrics address). Everything else is bound at start (sockets, state
 * directories, containerd connection, runtimes, the streaming server's
 * address) and needs a restart.
 */
export const RELOADABLE_KEYS = [
  'logLevel',
  'registry.configPath',
  'registry.pullProgressTimeoutSeconds',
  'cni.confDir',
  'cni.binDirs',
  'cni.pluginTimeoutSeconds',
  'execSync.maxOutputBytes',
  'metrics.address',
] as const;
export type ReloadableKey = (typeof RELOADABLE_KEYS)[number];

const RELOADABLE = new Set<string>(RELOADABLE_KEYS);

export function getKey(cfg: AdapterConfig, key: string): unknown {
  let node: unknown = cfg;
  for (const part of key.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  return node;
}

export function setKey(cfg: AdapterConfig, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = cfg as unknown as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>;
  node[parts[parts.length - 1]!] = value;
}

export interface ReloadPlan {
  /** Changed keys this process can take now, in schema order. */
  apply: ReloadableKey[];
  /** Changed keys that only take effect after a restart. */
  refuse: string[];
}

/** What differs between the running configuration and a newly loaded one. */
export function planReload(current: AdapterConfig, next: AdapterConfig): ReloadPlan {
  const plan: ReloadPlan = { apply: [], refuse: [] };
  for (const { key } of listSettings()) {
    if (JSON.stringify(getKey(current, key)) === JSON.stringify(getKey(next, key))) continue;
    if (RELOADABLE.has(key)) plan.apply.push(key as ReloadableKey);
    else plan.refuse.push(key);
  }
  return plan;
}
