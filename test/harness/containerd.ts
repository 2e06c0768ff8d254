/**
 * A private containerd for tests and benchmarks: everything (root, state,
 * sockets, opt, runc state, CNI conf, registry hosts) lives in the harness
 * tmp dir; its own CRI plugin is enabled with the settings that work on these
 * machines (see /work/shared/field-notes.md) unless `criPlugin: false`.
 *
 * stopContainerdSync() leaves nothing behind: containerd, its shims and their
 * containers are killed, runc state deleted, mounts under the tmp dir undone.
 */
import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { CniNetwork } from './cni';
import {
  childEnv,
  descendants,
  FatalWaitError,
  freePort,
  killAllSync,
  killQuiet,
  listProcesses,
  pidAlive,
  run,
  tailFile,
  terminateSync,
  tryRunSync,
  unmountAllUnder,
  waitFor,
} from './util';

export interface ContainerdOptions {
  /** The harness tmp dir; containerd's files go to <tmpDir>/containerd/… and sockets to <tmpDir>/. */
  tmpDir: string;
  /** Enable containerd's own CRI plugin (default true). */
  criPlugin?: boolean;
  /** host:port of the local registry; every pull is directed there. */
  registryHost: string;
  /** Full reference of the pause image for the CRI plugin. */
  sandboxImage: string;
  cni: CniNetwork;
}

export interface ContainerdInfo {
  /** gRPC socket path. */
  address: string;
  ttrpcAddress: string;
  root: string;
  state: string;
  /** runc root of the CRI plugin's runc runtime (runc adds /<namespace>). */
  runcRoot: string;
  logPath: string;
  configPath: string;
  /** hosts.toml directory (containerd's registry config_path layout). */
  registryConfigPath: string;
  /** CRI plugin streaming server (127.0.0.1:port), when the plugin is enabled. */
  streamServer?: string;
  criPlugin: boolean;
  pid: number;
}

export interface Containerd extends ContainerdInfo {
  stop(): Promise<void>;
  stopSync(): void;
}

const q = (s: string): string => JSON.stringify(s); // TOML basic strings accept JSON escapes

/** certs.d/_default and certs.d/<host> both send everything to the local registry over http. */
export function writeRegistryHosts(dir: string, registryHost: string): void {
  const url = `http://${registryHost}`;
  const hosts = (caps: string[]): string =>
    [`server = ${q(url)}`, '', `[host.${q(url)}]`, `  capabilities = ${JSON.stringify(caps)}`, '  skip_verify = true', ''].join('\n');
  for (const [name, caps] of [
    ['_default', ['pull', 'resolve']],
    [registryHost, ['pull', 'resolve', 'push']],
  ] as const) {
    fs.mkdirSync(path.join(dir, name), { recursive: true });
    fs.writeFileSync(path.join(dir, name, 'hosts.toml'), hosts([...caps]));
  }
}

function configToml(o: {
  root: string;
  state: string;
  address: string;
  ttrpcAddress: string;
  optPath: string;
  criPlugin: boolean;
  sandboxImage: string;
  streamPort: number;
  runcRoot: string;
  cni: CniNetwork;
  registryConfigPath: string;
}): string {
  const disabled = [
    'io.containerd.snapshotter.v1.aufs',
    'io.containerd.snapshotter.v1.btrfs',
    'io.containerd.snapshotter.v1.devmapper',
    'io.containerd.snapshotter.v1.zfs',
    'io.containerd.tracing.processor.v1.otlp',
    'io.containerd.internal.v1.tracing',
  ];
  if (!o.criPlugin) disabled.push('io.containerd.grpc.v1.cri');
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  const lines = [
    'version = 2',
    `root = ${q(o.root)}`,
    `state = ${q(o.state)}`,
    `disabled_plugins = ${JSON.stringify(disabled)}`,
    '',
    '[grpc]',
    `  address = ${q(o.address)}`,
    '',
    '[ttrpc]',
    `  address = ${q(o.ttrpcAddress)}`,
    '',
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '',
    '[metrics]',
    '  address = ""',
    '',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(o.optPath)}`,
    '',
  ];
  if (o.criPlugin) {
    lines.push(
      `[${cri}]`,
      `  sandbox_image = ${q(o.sandboxImage)}`,
      '  stream_server_address = "127.0.0.1"',
      `  stream_server_port = ${q(String(o.streamPort))}`,
      '  restrict_oom_score_adj = true',
      '  disable_hugetlb_controller = true',
      '  tolerate_missing_hugetlb_controller = true',
      '  netns_mounts_under_state_dir = true',
      '  enable_selinux = false',
      '',
      `[${cri}.containerd]`,
      '  snapshotter = "overlayfs"',
      '  default_runtime_name = "runc"',
      '',
      `[${cri}.containerd.runtimes.runc]`,
      '  runtime_type = "io.containerd.runc.v2"',
      '',
      `[${cri}.containerd.runtimes.runc.options]`,
      `  Root = ${q(o.runcRoot)}`,
      '',
      `[${cri}.cni]`,
      `  bin_dir = ${q(o.cni.binDir)}`,
      `  conf_dir = ${q(o.cni.confDir)}`,
      '  max_conf_num = 1',
      '',
      `[${cri}.registry]`,
      `  config_path = ${q(o.registryConfigPath)}`,
      '',
    );
  }
  return lines.join('\n');
}

async function ctr(address: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return (await run('ctr', ['--address', address, ...args], { timeoutMs })).stdout;
}

export async function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  const criPlugin = opts.criPlugin ?? true;
  const base = path.join(opts.tmpDir, 'containerd');
  const root = path.join(base, 'root');
  const state = path.join(base, 'state');
  const optPath = path.join(base, 'opt');
  const runcRoot = path.join(opts.tmpDir, 'runc');
  const registryConfigPath = path.join(opts.tmpDir, 'certs.d');
  const address = path.join(opts.tmpDir, 'containerd.sock');
  const ttrpcAddress = path.join(opts.tmpDir, 'containerd.sock.ttrpc');
  const configPath = path.join(base, 'config.toml');
  const logPath = path.join(base, 'containerd.log');
  for (const d of [root, state, optPath, runcRoot]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
  writeRegistryHosts(registryConfigPath, opts.registryHost);
  const streamPort = criPlugin ? await freePort() : 0;
  fs.writeFileSync(
    configPath,
    configToml({
      root,
      state,
      address,
      ttrpcAddress,
      optPath,
      criPlugin,
      sandboxImage: opts.sandboxImage,
      streamPort,
      runcRoot,
      cni: opts.cni,
      registryConfigPath,
    }),
  );

  const logFd = fs.openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn('containerd', ['--config', configPath], { stdio: ['ignore', logFd, logFd], env: childEnv() });
  } finally {
    fs.closeSync(logFd);
  }
  let exited: string | undefined;
  child.on('exit', (code, sig) => {
    exited = `exited (${code ?? sig})`;
  });
  child.on('error', (e) => {
    exited = `failed to start: ${e.message}`;
  });
  const pid = child.pid ?? -1;

  const info: ContainerdInfo = {
    address,
    ttrpcAddress,
    root,
    state,
    runcRoot,
    logPath,
    configPath,
    registryConfigPath,
    streamServer: criPlugin ? `127.0.0.1:${streamPort}` : undefined,
    criPlugin,
    pid,
  };
  const stopSync = (): void => stopContainerdSync(info, opts.tmpDir);
  const stop = async (): Promise<void> => {
    // let containerd shut down asynchronously (node reaps it), the rest is synchronous work
    if (exited === undefined && pid > 0) {
      const done = new Promise<void>((r) => child.once('exit', () => r()));
      killQuiet(pid, 'SIGTERM');
      const t = setTimeout(() => killQuiet(pid, 'SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    }
    stopSync();
  };

  try {
    await waitFor(
      `containerd on ${address}`,
      async () => {
        if (exited !== undefined) throw new FatalWaitError(`containerd ${exited}:\n${tailFile(logPath)}`);
        if (!fs.existsSync(address)) return false;
        await ctr(address, ['version'], 5000);
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 30, onTimeout: () => tailFile(logPath) },
    );
    if (criPlugin) {
      const plugins = await ctr(address, ['plugins', 'ls']);
      const line = plugins.split('\n').find((l) => /\bio\.containerd\.grpc\.v1\b/.test(l) && /\bcri\b/.test(l));
      if (!line || !/\bok\s*$/.test(line)) {
        throw new Error(`containerd's CRI plugin did not load: ${line ?? '(not listed)'}\n${tailFile(logPath)}`);
      }
    }
  } catch (e) {
    stopSync();
    throw e;
  }
  return { ...info, stop, stopSync };
}

/** Where a runc v2 shim of containerd 1.6 puts its socket (runtime/v2/shim.SocketAddress). */
export function shimSocketPath(address: string, namespace: string, id: string): string {
  const d = crypto.createHash('sha256').update(path.join(address, namespace, id)).digest('hex');
  return path.join('/run/containerd/s', d);
}

function argValue(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Shim processes belonging to the containerd at `address` (or mentioning tmpDir). */
export function findShims(address: string, tmpDir: string): { pid: number; argv: string[] }[] {
  return listProcesses().filter(
    (p) =>
      p.argv.length > 0 &&
      path.basename(p.argv[0]).startsWith('containerd-shim') &&
      (argValue(p.argv, '-address') === address || p.argv.some((a) => a.includes(tmpDir))),
  );
}

interface RuncState {
  id: string;
  bundle: string;
  status: string;
}

/** runc roots that may hold containers of this containerd: ours under tmpDir and the shim default. */
function runcRootsFor(tmpDir: string): string[] {
  const bases = [path.join(tmpDir, 'runc'), '/run/containerd/runc'];
  try {
    for (const e of fs.readdirSync(tmpDir)) if (e.startsWith('runc-')) bases.push(path.join(tmpDir, e));
  } catch {
    // gone
  }
  const roots: string[] = [];
  for (const b of bases) {
    try {
      for (const ns of fs.readdirSync(b)) roots.push(path.join(b, ns));
    } catch {
      // no such dir
    }
  }
  return roots;
}

/** runc delete --force every container whose bundle is under tmpDir (kills it, removes cgroups/state). */
export function deleteRuncContainers(tmpDir: string): void {
  for (const root of runcRootsFor(tmpDir)) {
    const out = tryRunSync('runc', ['--root', root, 'list', '--format', 'json'], 10_000);
    let list: RuncState[] = [];
    try {
      list = (JSON.parse(out || 'null') as RuncState[] | null) ?? [];
    } catch {
      list = [];
    }
    for (const c of list) {
      if (!c.bundle.startsWith(tmpDir + '/') && !root.startsWith(tmpDir + '/')) continue;
      tryRunSync('runc', ['--root', root, 'delete', '--force', c.id], 15_000);
    }
    if (!root.startsWith(tmpDir + '/')) {
      try {
        fs.rmdirSync(root); // only if now empty
      } catch {
        // still used by someone else
      }
    }
  }
}

function readdirQuiet(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** containerd namespaces and container/sandbox ids this instance used (from its state/root dirs). */
function usedNamespacesAndIds(tmpDir: string): { namespaces: Set<string>; ids: Set<string> } {
  const base = path.join(tmpDir, 'containerd');
  const namespaces = new Set<string>();
  const ids = new Set<string>();
  const tasks = path.join(base, 'state', 'io.containerd.runtime.v2.task');
  for (const ns of readdirQuiet(tasks)) {
    namespaces.add(ns);
    for (const id of readdirQuiet(path.join(tasks, ns))) ids.add(id);
  }
  for (const d of ['root', 'state']) {
    for (const sub of ['sandboxes', 'containers']) {
      for (const id of readdirQuiet(path.join(base, d, 'io.containerd.grpc.v1.cri', sub))) ids.add(id);
    }
  }
  return { namespaces, ids };
}

/** Remove a cgroup directory tree bottom-up; rmdir only succeeds on empty cgroups, so nothing in use is touched. */
function rmdirCgroupTree(dir: string): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) rmdirCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // busy or not empty: someone else's
  }
}

/**
 * Empty cgroups runc left for our containers (<controller>/<namespace>/<id>),
 * then the namespace parents if they are empty too.
 */
function removeCgroups(namespaces: Set<string>, ids: Set<string>): void {
  const roots = readdirQuiet('/sys/fs/cgroup').map((c) => path.join('/sys/fs/cgroup', c));
  roots.push('/sys/fs/cgroup');
  for (const ctrl of roots) {
    for (const ns of namespaces) {
      const nsDir = path.join(ctrl, ns);
      if (!fs.existsSync(nsDir)) continue;
      for (const id of ids) rmdirCgroupTree(path.join(nsDir, id));
      try {
        fs.rmdirSync(nsDir);
      } catch {
        // still has other cgroups
      }
    }
  }
}

/** libcni's result cache entries (<cacheDir>/results/<network>-<id>-<ifname>) of our sandboxes. */
function removeCniResults(ids: Set<string>): void {
  const dir = '/var/lib/cni/results';
  for (const name of readdirQuiet(dir)) {
    for (const id of ids) {
      if (name.includes(`-${id}-`)) {
        fs.rmSync(path.join(dir, name), { force: true });
        break;
      }
    }
  }
}

/** Stop containerd, shims, containers and mounts of this instance. Idempotent. */
export function stopContainerdSync(info: Pick<ContainerdInfo, 'address' | 'pid'>, tmpDir: string): void {
  const t0 = Date.now();
  const lap = (what: string): void => {
    if (process.env.CRI_ADAPTER_HARNESS_DEBUG === '1') process.stderr.write(`containerd stop: ${what} at +${Date.now() - t0} ms\n`);
  };
  // 1. containerd itself (and any other containerd started with a config in tmpDir)
  const daemons = listProcesses()
    .filter((p) => p.argv.length > 0 && path.basename(p.argv[0]) === 'containerd' && p.argv.some((a) => a.includes(tmpDir)))
    .map((p) => p.pid);
  if (info.pid > 0 && pidAlive(info.pid) && !daemons.includes(info.pid)) daemons.push(info.pid);
  terminateSync(daemons, 5000);
  lap('containerd ended');
  const used = usedNamespacesAndIds(tmpDir);

  // 2. containers: runc delete --force while runc state is intact
  deleteRuncContainers(tmpDir);
  lap('runc containers deleted');

  // 3. shims and whatever still runs below them; their sockets in /run/containerd/s
  const procs = listProcesses();
  const shims = findShims(info.address, tmpDir);
  const victims: number[] = [];
  for (const s of shims) victims.push(...descendants(s.pid, procs).reverse());
  killAllSync(victims);
  killAllSync(shims.map((s) => s.pid));
  for (const s of shims) {
    const ns = argValue(s.argv, '-namespace');
    const id = argValue(s.argv, '-id');
    if (ns && id) {
      fs.rmSync(shimSocketPath(info.address, ns, id), { force: true });
      fs.rmSync(shimSocketPath(info.address, ns, id) + '.sock', { force: true });
    }
  }
  // a second pass catches containers whose shim was killed before runc delete ran
  deleteRuncContainers(tmpDir);

  lap('shims killed');

  // 4. mounts (rootfs overlays, sandbox shm, netns bind mounts under the state dir)
  unmountAllUnder(tmpDir);
  lap('unmounted');

  // 5. cgroups and CNI cache entries of our containers
  removeCgroups(used.namespaces, used.ids);
  removeCniResults(used.ids);
  lap('cgroups removed');
}
