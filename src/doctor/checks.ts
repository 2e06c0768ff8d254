import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, promises as fsp, readFileSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { AdapterConfig } from '../config/load';
import { ContainerdConnection } from '../containerd/connection';
import { socketIsLive } from '../cri/server';
import { probeNodeEnvironment } from '../host/node-environment';
import { loadHostsConfig } from '../image/registry/hosts';
import { silentLogger } from '../log/logger';
import { locatePlugin } from '../network/cni';
import { loadNetworkConfig } from '../network/cni-config';
import { isLoopbackHost } from '../util/host-port';

export type CheckStatus = 'OK' | 'WARN' | 'FAIL';

/** One line of the report: what was checked, what was found, what to do about it. */
export interface CheckResult {
  check: string;
  status: CheckStatus;
  message: string;
  /** What an operator should do; empty when nothing. */
  fix?: string;
}

export interface DoctorOptions {
  /** The kubelet's config file (its cgroupDriver is compared with ours); default /var/lib/kubelet/config.yaml if present. */
  kubeletConfig?: string;
  /** Deadline of each containerd call. */
  timeoutMs?: number;
}

const DEFAULT_KUBELET_CONFIG = '/var/lib/kubelet/config.yaml';
const OVERLAYFS_MAGIC = 0x794c7630;
const FS_NAMES = new Map<number, string>([
  [0xef53, 'ext4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [OVERLAYFS_MAGIC, 'overlay'],
  [0x2fc12fc1, 'zfs'],
  [0x6969, 'nfs'],
]);
const GiB = 1024 ** 3;

const ok = (check: string, message: string): CheckResult => ({ check, status: 'OK', message });
const warn = (check: string, message: string, fix: string): CheckResult => ({ check, status: 'WARN', message, fix });
const fail = (check: string, message: string, fix: string): CheckResult => ({ check, status: 'FAIL', message, fix });

/** An executable on PATH (or the path itself when absolute). */
function which(name: string): string | undefined {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // next
    }
  }
  return undefined;
}

/** containerd's rule for shim binaries: io.containerd.runc.v2 -> containerd-shim-runc-v2. */
export function shimBinary(runtimeType: string): string {
  const parts = runtimeType.split('.');
  return parts.length >= 2 ? `containerd-shim-${parts.slice(-2).join('-')}` : runtimeType;
}

function short(text: string, max = 300): string {
  const t = text.trim().replace(/\s+/g, ' ');
  return t.length > max ? `${t.slice(0, max)}...` : t;
}

async function containerdChecks(config: AdapterConfig, timeoutMs: number): Promise<{ results: CheckResult[]; snapshotterRoot?: string }> {
  const results: CheckResult[] = [];
  const address = config.containerd.address;
  if (!existsSync(address)) {
    return {
      results: [fail('containerd', `no socket at ${address}`, 'start containerd (systemctl start containerd) or set containerd.address')],
    };
  }
  const conn = new ContainerdConnection({ address, namespace: config.containerd.namespace, callTimeoutMs: timeoutMs }, silentLogger());
  try {
    const deadline = () => Date.now() + timeoutMs;
    let version;
    try {
      version = await conn.version.version({}, { deadline: deadline() });
    } catch (err) {
      results.push(fail('containerd', `${address} does not answer: ${short((err as Error).message)}`, 'check that containerd runs and that this user may open its socket'));
      return { results };
    }
    const major = Number(/^v?(\d+)\./.exec(version.version)?.[1] ?? 0);
    results.push(
      major >= 1
        ? ok('containerd', `${address} answers, version ${version.version} (revision ${version.revision.slice(0, 12)})`)
        : warn('containerd', `${address} answers with an unexpected version "${short(version.version, 40)}"`, 'use containerd 1.6 or later'),
    );
    try {
      await conn.namespaces.get({ name: config.containerd.namespace }, { deadline: deadline() });
      results.push(ok('containerd namespace', `"${config.containerd.namespace}" exists`));
    } catch {
      results.push(ok('containerd namespace', `"${config.containerd.namespace}" does not exist yet; the daemon creates it at start`));
    }
    let snapshotterRoot: string | undefined;
    try {
      const { plugins } = await conn.introspection.plugins(
        { filters: [`type==io.containerd.snapshotter.v1,id==${config.snapshotter}`] },
        { deadline: deadline() },
      );
      const plugin = plugins[0];
      if (!plugin) {
        results.push(fail('snapshotter', `containerd has no snapshotter "${config.snapshotter}"`, 'set snapshotter to one containerd lists (ctr plugins ls)'));
      } else if (plugin.initErr && plugin.initErr.code !== 0) {
        results.push(
          fail('snapshotter', `containerd's "${config.snapshotter}" snapshotter failed to load: ${short(plugin.initErr.message)}`, 'fix the filesystem under its root or pick another snapshotter'),
        );
      } else {
        snapshotterRoot = plugin.exports.root;
        results.push(snapshotterFsCheck(config.snapshotter, snapshotterRoot));
      }
    } catch (err) {
      results.push(warn('snapshotter', `cannot list containerd's plugins: ${short((err as Error).message)}`, 'check containerd\'s introspection service'));
    }
    return { results, snapshotterRoot };
  } finally {
    conn.close();
  }
}

function fsTypeOf(p: string): string | undefined {
  try {
    // statfs of a path that does not exist yet: ask its nearest parent.
    let at = p;
    while (!existsSync(at) && at !== '/') at = path.dirname(at);
    const type = Number(statfsSync(at).type);
    return FS_NAMES.get(type) ?? `0x${type.toString(16)}`;
  } catch {
    return undefined;
  }
}

function snapshotterFsCheck(snapshotter: string, root: string | undefined): CheckResult {
  if (!root) return ok('snapshotter', `"${snapshotter}" is loaded (its root is not exported)`);
  const type = fsTypeOf(root);
  if (snapshotter === 'overlayfs' && type === 'overlay') {
    return fail('snapshotter', `overlayfs root ${root} is itself on overlayfs`, 'put containerd\'s root on ext4 or xfs (ftype=1)');
  }
  return ok('snapshotter', `"${snapshotter}" is loaded, root ${root} on ${type ?? 'an unknown filesystem'}`);
}

function runtimeChecks(config: AdapterConfig): CheckResult[] {
  const out: CheckResult[] = [];
  for (const [handler, rt] of Object.entries(config.runtimes)) {
    const check = `runtime ${handler}`;
    const shim = shimBinary(rt.type);
    if (!which(shim)) {
      out.push(fail(check, `shim ${shim} (for ${rt.type}) is not on PATH`, 'install containerd\'s runc shim or fix the handler\'s type'));
      continue;
    }
    const binary = rt.binaryName || 'runc';
    const found = which(binary);
    if (!found) {
      out.push(fail(check, `runtime binary ${binary} is not found`, 'install runc or set runtimes.<handler>.binaryName'));
      continue;
    }
    const features = spawnSync(found, ['features'], { encoding: 'utf8', timeout: 10_000 });
    if (features.status !== 0) {
      out.push(warn(check, `${found} found, but "${binary} features" failed: ${short(features.stderr || String(features.error ?? ''))}`, 'use runc 1.1 or later'));
      continue;
    }
    try {
      const f = JSON.parse(features.stdout) as { ociVersionMax?: string; mountOptions?: string[] };
      const idmap = (f.mountOptions ?? []).includes('idmap') ? 'idmapped mounts' : 'no idmapped mounts';
      out.push(ok(check, `${shim} and ${found} found (OCI up to ${f.ociVersionMax ?? '?'}, ${idmap})`));
    } catch {
      out.push(warn(check, `${found} found, but its features output is not JSON`, 'use runc 1.1 or later'));
    }
  }
  return out;
}

function cgroupChecks(config: AdapterConfig, opts: DoctorOptions): CheckResult[] {
  const out: CheckResult[] = [];
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const hybrid = !v2 && existsSync('/sys/fs/cgroup/unified/cgroup.controllers');
  const version = v2 ? 'v2 (unified)' : hybrid ? 'v1 (hybrid, cgroup2 at /sys/fs/cgroup/unified)' : 'v1';
  const systemdRunning = existsSync('/run/systemd/system');
  if (config.cgroupDriver === 'systemd' && !systemdRunning) {
    out.push(fail('cgroups', `cgroup ${version}, driver systemd, but systemd is not the init system here`, 'set cgroupDriver=cgroupfs'));
  } else {
    out.push(ok('cgroups', `cgroup ${version}, driver ${config.cgroupDriver}`));
  }
  const file = opts.kubeletConfig ?? (existsSync(DEFAULT_KUBELET_CONFIG) ? DEFAULT_KUBELET_CONFIG : undefined);
  if (!file) {
    out.push(ok('kubelet cgroup driver', `no kubelet config at ${DEFAULT_KUBELET_CONFIG}; not compared (--kubelet-config names one)`));
    return out;
  }
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    out.push(fail('kubelet cgroup driver', `cannot read ${file}: ${short((err as Error).message)}`, 'fix the kubelet config file or name another with --kubelet-config'));
    return out;
  }
  // The kubelet's own default when the file does not say.
  const raw = (doc as { cgroupDriver?: unknown } | null)?.cgroupDriver;
  const kubelet = typeof raw === 'string' && raw ? raw : 'cgroupfs';
  if (kubelet !== config.cgroupDriver) {
    out.push(
      fail('kubelet cgroup driver', `the kubelet (${file}) uses ${short(kubelet, 40)}, the adapter ${config.cgroupDriver}`, `set cgroupDriver=${short(kubelet, 40)} here or cgroupDriver: ${config.cgroupDriver} in the kubelet config`),
    );
  } else {
    out.push(ok('kubelet cgroup driver', `the kubelet (${file}) and the adapter both use ${kubelet}`));
  }
  return out;
}

async function cniChecks(config: AdapterConfig): Promise<CheckResult[]> {
  const { network, problem } = await loadNetworkConfig(config.cni.confDir);
  if (!network) return [fail('cni', short(problem, 600), `write a network config list into ${config.cni.confDir} (or install a CNI daemonset)`)];
  const missing = network.plugins.map((p) => p.type).filter((t) => !locatePlugin(t, config.cni.binDirs));
  if (missing.length) {
    return [
      fail('cni', `network "${network.name}" (${network.source}) needs plugins not found in ${config.cni.binDirs.join(', ')}: ${missing.join(', ')}`, 'install the CNI plugins (containernetworking-plugins) or fix cni.binDirs'),
    ];
  }
  return [ok('cni', `network "${network.name}" from ${network.source}; plugins ${network.plugins.map((p) => p.type).join(', ')} found`)];
}

async function socketChecks(config: AdapterConfig): Promise<CheckResult[]> {
  const dir = path.dirname(config.listen);
  // The daemon creates the directory; what matters is the nearest part that exists.
  let at = dir;
  while (!existsSync(at) && at !== '/') at = path.dirname(at);
  let st;
  try {
    st = statSync(at);
  } catch (err) {
    return [fail('cri socket', `cannot stat ${at}: ${short((err as Error).message)}`, 'fix the listen path')];
  }
  if (!st.isDirectory()) return [fail('cri socket', `${at} (on the way to ${config.listen}) is not a directory`, 'choose another listen path')];
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
  } catch {
    return [fail('cri socket', `${at} is not writable by this user`, 'run as root or choose a listen path in a writable directory')];
  }
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  if (existsSync(config.listen)) {
    if (await socketIsLive(config.listen)) {
      return [fail('cri socket', `another process serves ${config.listen}`, 'stop it (another cri-adapter?) or choose another listen path')];
    }
    return [ok('cri socket', `${config.listen} is a stale socket file; the daemon replaces it (directory ${at} mode ${mode})`)];
  }
  const note = at === dir ? `directory ${dir} mode ${mode}` : `${dir} will be created under ${at}`;
  return [ok('cri socket', `${config.listen} is free (${note}); the socket is made mode 0660`)];
}

function streamingCheck(config: AdapterConfig): CheckResult {
  const host = config.streaming.address;
  if (isLoopbackHost(host)) return ok('streaming', `server on ${host} (loopback)`);
  return warn('streaming', `server listens on ${host}, not loopback; it has no authentication besides one-time URLs`, 'set streaming.address=127.0.0.1 unless clients elsewhere must reach it and something else guards it');
}

async function registryChecks(config: AdapterConfig): Promise<CheckResult[]> {
  const dir = config.registry.configPath;
  if (!dir) return [ok('registry hosts', 'registry.configPath not set: every registry at its default upstream over https')];
  let names: string[];
  try {
    names = (await fsp.readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch (err) {
    return [warn('registry hosts', `cannot read ${dir}: ${short((err as Error).message)}`, 'create the directory or fix registry.configPath')];
  }
  const out: CheckResult[] = [];
  for (const name of names) {
    // The directory name stands for the registry; _default catches every other host.
    try {
      const cfg = await loadHostsConfig(dir, name === '_default' ? 'example.invalid' : name);
      if (cfg.warnings.length) out.push(warn(`registry ${name}`, short(cfg.warnings.join('; '), 600), 'fix or remove the ignored keys'));
      else out.push(ok(`registry ${name}`, `${cfg.endpoints.length} endpoint(s): ${short(cfg.endpoints.map((e) => e.baseUrl + (e.mirror ? ' (mirror)' : '')).join(', '), 200)}`));
    } catch (err) {
      out.push(fail(`registry ${name}`, short((err as Error).message, 600), `fix ${path.join(dir, name, 'hosts.toml')}`));
    }
  }
  if (out.length === 0) out.push(ok('registry hosts', `${dir} has no host directories: defaults for every registry`));
  return out;
}

function securityChecks(config: AdapterConfig): CheckResult[] {
  const env = probeNodeEnvironment(config.cgroupDriver);
  const out: CheckResult[] = [];
  out.push(
    env.seccompEnabled
      ? ok('seccomp', 'available (RuntimeDefault profiles apply)')
      : warn('seccomp', 'not available in this kernel: seccomp profiles are refused', 'use a kernel with CONFIG_SECCOMP_FILTER'),
  );
  const apparmor = readFirst('/sys/module/apparmor/parameters/enabled') === 'Y';
  const selinux = readFirst('/sys/fs/selinux/enforce');
  out.push(
    ok(
      'lsm',
      `AppArmor ${apparmor ? 'enabled' : 'not present (pods asking for a profile are refused)'}; SELinux ${
        selinux === '1' ? 'enforcing' : selinux === '0' ? 'permissive' : 'not present'
      }`,
    ),
  );
  const caps = new Set(env.availableCapabilities ?? []);
  const missing = ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN', 'CAP_SYS_RESOURCE', 'CAP_SYS_PTRACE', 'CAP_MKNOD'].filter((c) => !caps.has(c));
  if (missing.includes('CAP_SYS_ADMIN') || missing.includes('CAP_NET_ADMIN')) {
    out.push(fail('capabilities', `the daemon would lack ${missing.join(', ')}`, 'run it as root with a full capability set'));
  } else if (missing.length) {
    const why = missing.includes('CAP_SYS_RESOURCE')
      ? `; oom_score_adj below ${env.minOomScoreAdj ?? 0} is clamped, and privileged containers get no CAP_SYS_RESOURCE`
      : '';
    out.push(warn('capabilities', `the daemon would lack ${missing.join(', ')}${why}`, 'nothing to do if the host withholds them on purpose'));
  } else {
    out.push(ok('capabilities', 'the daemon has every capability it uses'));
  }
  return out;
}

function readFirst(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function spaceCheck(label: string, dir: string): CheckResult {
  let at = dir;
  while (!existsSync(at) && at !== '/') at = path.dirname(at);
  try {
    const s = statfsSync(at);
    const free = s.bavail * s.bsize;
    const pct = s.blocks > 0 ? (100 * s.bavail) / s.blocks : 0;
    const text = `${label} ${dir}: ${(free / GiB).toFixed(1)} GiB free (${pct.toFixed(0)}%)`;
    if (free < 256 * 1024 * 1024) return fail(`space ${label}`, text, 'free space there: pods, images and logs cannot be written');
    if (free < 2 * GiB || pct < 10) return warn(`space ${label}`, text, 'free space there before the kubelet starts evicting pods');
    return ok(`space ${label}`, text);
  } catch (err) {
    return warn(`space ${label}`, `cannot statfs ${at}: ${short((err as Error).message)}`, 'check the path');
  }
}

/** Every check, in the order an operator would fix them. */
export async function runChecks(config: AdapterConfig, opts: DoctorOptions = {}): Promise<CheckResult[]> {
  const { results, snapshotterRoot } = await containerdChecks(config, opts.timeoutMs ?? 3000);
  return [
    ...results,
    ...runtimeChecks(config),
    ...cgroupChecks(config, opts),
    ...(await cniChecks(config)),
    ...(await socketChecks(config)),
    streamingCheck(config),
    ...(await registryChecks(config)),
    ...securityChecks(config),
    spaceCheck('root', config.root),
    spaceCheck('state', config.state),
    spaceCheck('images', snapshotterRoot ?? '/var/lib/containerd'),
  ];
}
