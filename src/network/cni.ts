import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { abortError, DeadlineExceededError, InternalError, InvalidArgumentError } from '../errors';
import { startCommand } from '../host/commands';
import { recordCniPluginRun } from '../metrics';
import type { CniNetworkList } from './cni-config';

/** What a pod passes to its plugins (CNI_ARGS and runtime capabilities). */
export interface CniPodContext {
  containerId: string;
  netnsPath: string;
  ifName: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  /** Runtime capability values; each is handed only to plugins that declare it. */
  capabilities: CniCapabilities;
}

export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

export interface CniCapabilities {
  portMappings?: CniPortMapping[];
  bandwidth?: { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number };
  dns?: { servers?: string[]; searches?: string[]; options?: string[] };
  ipRanges?: Array<Array<{ subnet: string }>>;
}

/** The CNI result (spec 1.0.0), as much as the runtime reads. */
export interface CniResult {
  cniVersion: string;
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number }>;
  routes?: Array<{ dst: string; gw?: string }>;
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

export interface CniSettings {
  binDirs: string[];
  timeoutMs: number;
}

/** The IPs of a result without prefix lengths, IPv4 first (the CRI's primary IP is the first). */
export function podIps(result: CniResult | undefined): string[] {
  const ips = (result?.ips ?? []).map((ip) => ip.address.split('/')[0]!).filter(Boolean);
  return [...ips.filter((ip) => !ip.includes(':')), ...ips.filter((ip) => ip.includes(':'))];
}

/**
 * The stdin of one plugin in a list: the plugin's own config plus the
 * list's name and version, the previous plugin's result, and the runtime
 * values for the capabilities this plugin declares (and only those).
 */
export function pluginStdin(
  list: CniNetworkList,
  plugin: CniNetworkList['plugins'][number],
  prevResult: CniResult | undefined,
  capabilities: CniCapabilities,
): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  if (prevResult) conf.prevResult = prevResult;
  const declared = (plugin.capabilities ?? {}) as Record<string, boolean>;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, value] of Object.entries(capabilities)) {
    if (declared[cap] && value !== undefined) runtimeConfig[cap] = value;
  }
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  else delete conf.runtimeConfig;
  return conf;
}

export function cniArgs(pod: CniPodContext): string {
  return [
    'IgnoreUnknown=1',
    `K8S_POD_NAMESPACE=${pod.podNamespace}`,
    `K8S_POD_NAME=${pod.podName}`,
    `K8S_POD_INFRA_CONTAINER_ID=${pod.containerId}`,
    `K8S_POD_UID=${pod.podUid}`,
  ].join(';');
}

/** Where a plugin's binary is: the first of the bin dirs that has it. */
export function locatePlugin(type: string, binDirs: string[]): string | undefined {
  if (type.includes('/')) return undefined;
  for (const dir of binDirs) {
    const p = path.join(dir, type);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function findPlugin(type: string, binDirs: string[]): string {
  if (type.includes('/')) throw new InvalidArgumentError(`CNI plugin type "${type}" must be a bare name`);
  const found = locatePlugin(type, binDirs);
  if (!found) throw new InternalError(`CNI plugin "${type}" not found in ${binDirs.join(', ')}`);
  return found;
}

/**
 * Runs one plugin binary the way the CNI spec says: env for the call, config
 * on stdin, result on stdout. The plugin gets a process group of its own so
 * that a timeout or cancellation kills everything it started: a plugin's
 * child holding stdout open would otherwise keep the call waiting (Node's
 * 'close' waits for the pipes) long after the plugin itself was killed.
 * It runs through the command helper (host/commands.ts), off the event loop.
 */
function execPlugin(
  binary: string,
  command: 'ADD' | 'DEL' | 'CHECK',
  pod: CniPodContext,
  stdin: Record<string, unknown>,
  settings: CniSettings,
  signal?: AbortSignal,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = startCommand({
      file: binary,
      args: [],
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.containerId,
        CNI_NETNS: pod.netnsPath,
        CNI_IFNAME: pod.ifName,
        CNI_PATH: settings.binDirs.join(':'),
        CNI_ARGS: cniArgs(pod),
      },
      input: JSON.stringify(stdin),
      detached: true,
    });
    let settled = false;
    const started = performance.now();
    const finish = (err: Error | undefined, out?: string) => {
      if (settled) return;
      settled = true;
      recordCniPluginRun(path.basename(binary), command, (performance.now() - started) / 1000, err !== undefined);
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(out ?? '');
    };
    const stop = (err: Error) => {
      if (settled) return;
      child.kill();
      finish(err);
    };
    const timer = setTimeout(
      () => stop(new DeadlineExceededError(`CNI plugin ${path.basename(binary)} ${command} did not finish in ${settings.timeoutMs} ms`)),
      settings.timeoutMs,
    );
    const onAbort = () => stop(abortError(signal!.reason, `CNI plugin ${path.basename(binary)} ${command}`));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    child.result.then(
      ({ code, stdout, stderr }) => {
        if (code === 0) return finish(undefined, stdout);
        let message = stderr.trim() || `exit code ${code}`;
        try {
          const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
          if (e.msg) message = `${e.msg}${e.details ? ` (${e.details})` : ''} [CNI error ${e.code}]`;
        } catch {
          // not a CNI error document; keep stderr
        }
        finish(new InternalError(`CNI plugin ${path.basename(binary)} ${command} failed: ${message}`));
      },
      (err: Error) => stop(new InternalError(`running CNI plugin ${binary}: ${err.message}`)),
    );
  });
}

/** CNI ADD through every plugin of the list in order; returns the final result. */
export async function cniAdd(list: CniNetworkList, pod: CniPodContext, settings: CniSettings, signal?: AbortSignal): Promise<CniResult> {
  let prev: CniResult | undefined;
  for (const plugin of list.plugins) {
    const out = await execPlugin(findPlugin(plugin.type, settings.binDirs), 'ADD', pod, pluginStdin(list, plugin, prev, pod.capabilities), settings, signal);
    try {
      prev = JSON.parse(out) as CniResult;
    } catch {
      throw new InternalError(`CNI plugin ${plugin.type} ADD printed no valid result: ${out.slice(0, 200)}`);
    }
  }
  return prev ?? { cniVersion: list.cniVersion };
}

/**
 * CNI DEL through the plugins in reverse order, each given the ADD result
 * (CNI 1.0 plugins need it to release what they allocated). Every plugin
 * runs even if one fails; the failures are returned together.
 */
export async function cniDel(
  list: CniNetworkList,
  pod: CniPodContext,
  addResult: CniResult | undefined,
  settings: CniSettings,
  signal?: AbortSignal,
): Promise<Error[]> {
  const errors: Error[] = [];
  for (const plugin of [...list.plugins].reverse()) {
    try {
      await execPlugin(findPlugin(plugin.type, settings.binDirs), 'DEL', pod, pluginStdin(list, plugin, addResult, pod.capabilities), settings, signal);
    } catch (err) {
      errors.push(err as Error);
    }
  }
  return errors;
}
