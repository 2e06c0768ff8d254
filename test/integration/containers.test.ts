/**
 * Containers through the CRI API of the built daemon, against the harness's
 * real containerd. Every test checks what happened inside the container
 * (its output, read back from the CRI log file the adapter writes) or on
 * the machine (containerd's objects, cgroup files), not only the answers.
 *
 * One adapter and one pod serve most tests; a few make pods of their own
 * (privileged, stopped, list filters, life cycle). The adapter is killed and
 * restarted on the same directory once (the crash test), so `adapter` and
 * `client` are reassigned there.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { status as Code } from '@grpc/grpc-js';
import {
  ContainerConfig,
  ContainerEventResponse,
  ContainerEventType,
  ContainerState,
  ContainerStatus,
  ContainerStatusRequest,
  CreateContainerRequest,
  DeepPartial,
  GetEventsRequest,
  ListContainersRequest,
  NamespaceMode,
  PodSandboxConfig,
  PodSandboxState,
  PullImageRequest,
  SecurityProfile_ProfileType,
  Signal,
  StreamContainersRequest,
  UpdateContainerResourcesRequest,
} from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import { BuiltImage, busyboxImage, MEDIA_TYPE, pushImage, sha256 } from '../harness/images';
import { AdapterProcess, startAdapter } from '../support/adapter-process';
import { criError, CriClient } from '../support/cri-client';
import { podConfig as podConfigIn, runPod as runPodOn } from '../support/pods';
import { waitFor } from '../harness/util';
import { harnessAdapterArgs } from '../support/harness-adapter';

const execFileP = promisify(execFile);
const h = loadHarnessEnv();
const NS = 'cri-adapter-it-containers';
const POD_NAMESPACE = 'ctr-test';
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// helpers

let adapter: AdapterProcess;
let client: CriClient;
let adapterDir: string;
let logDir: string;
/** The shared pod most tests run in. */
let pod: string;
let busybox: string;
/** busybox with Entrypoint ["echo","ep"], Cmd ["cmd"], image env and WorkingDir. */
let epImage: string;
/** busybox with User "app". */
let userImage: string;
/** The config each pod was created with (the kubelet sends it again with every CreateContainer). */
const pods = new Map<string, PodSandboxConfig>();

async function launchAdapter(): Promise<void> {
  adapter = await startAdapter({
    containerdAddress: h.containerd.address,
    namespace: NS,
    cniConfDir: h.cni.confDir,
    dir: adapterDir,
    extraArgs: harnessAdapterArgs(h),
  });
  client = adapter.client;
}

/** The busybox image with other config fields: a new config blob and manifest over the same layer. */
function reconfigured(base: BuiltImage, config: Record<string, unknown>): BuiltImage {
  const configJson = JSON.parse(base.config.data.toString('utf8')) as { config: Record<string, unknown> };
  configJson.config = { ...configJson.config, ...config };
  const data = Buffer.from(JSON.stringify(configJson));
  const cfg = { mediaType: MEDIA_TYPE.config, digest: sha256(data), size: data.length, data };
  const manifestJson = JSON.parse(base.manifest.data.toString('utf8')) as Record<string, unknown>;
  manifestJson.config = { mediaType: cfg.mediaType, digest: cfg.digest, size: cfg.size };
  const mdata = Buffer.from(JSON.stringify(manifestJson));
  return { ...base, config: cfg, manifest: { mediaType: MEDIA_TYPE.manifest, digest: sha256(mdata), size: mdata.length, data: mdata } };
}

/** A pod of this file's namespace, logging under logDir. */
function podConfig(name: string, more: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  return podConfigIn(POD_NAMESPACE, name, { logDirectory: logDir, ...more });
}

/** RunPodSandbox, remembering the config for the containers created in it. */
async function runPod(name: string, more: DeepPartial<PodSandboxConfig> = {}): Promise<string> {
  const config = podConfig(name, more);
  const podSandboxId = await runPodOn(client, config);
  pods.set(podSandboxId, config);
  return podSandboxId;
}

async function removePod(id: string): Promise<void> {
  await client.runtime.stopPodSandbox({ podSandboxId: id });
  await client.runtime.removePodSandbox({ podSandboxId: id });
  pods.delete(id);
}

let seq = 0;
/** A container config: busybox, a log file named after the container, `linux: {}`. */
function ctrConfig(name: string, more: DeepPartial<ContainerConfig> = {}): DeepPartial<ContainerConfig> {
  return { metadata: { name }, image: { image: busybox }, logPath: `${name}.log`, linux: {}, ...more };
}

async function create(podId: string, config: DeepPartial<ContainerConfig>): Promise<string> {
  const sandboxConfig = pods.get(podId) ?? podConfig('unknown');
  const { containerId } = await client.runtime.createContainer(CreateContainerRequest.fromPartial({ podSandboxId: podId, config, sandboxConfig }));
  return containerId;
}

async function status(id: string): Promise<ContainerStatus> {
  return (await client.runtime.containerStatus(ContainerStatusRequest.fromPartial({ containerId: id }))).status!;
}

async function waitExited(id: string, timeoutMs = 20_000): Promise<ContainerStatus> {
  return waitFor(`container ${id.slice(0, 12)} to exit`, async () => {
    const s = await status(id);
    return s.state === ContainerState.CONTAINER_EXITED ? s : undefined;
  }, { timeoutMs });
}

interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  content: string;
}

/** Parses a CRI log file (`<RFC3339Nano> <stream> <P|F> <content>`), joining partial records. */
function parseCriLog(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  const out: LogLine[] = [];
  const pending: Record<string, string> = { stdout: '', stderr: '' };
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    if (raw === '') continue;
    const m = /^(\S+) (stdout|stderr) ([PF]) (.*)$/s.exec(raw) ?? /^(\S+) (stdout|stderr) ([PF])$/.exec(raw);
    if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(raw)}`);
    if (Number.isNaN(Date.parse(m[1]!))) throw new Error(`bad timestamp in CRI log line: ${JSON.stringify(raw)}`);
    const stream = m[2] as 'stdout' | 'stderr';
    const content = m[4] ?? '';
    if (m[3] === 'P') {
      pending[stream] += content;
      continue;
    }
    out.push({ time: m[1]!, stream, content: pending[stream] + content });
    pending[stream] = '';
  }
  // Output that ended without a newline is a last P record (as containerd writes it).
  for (const stream of ['stdout', 'stderr'] as const) if (pending[stream]) out.push({ time: '', stream, content: pending[stream] });
  return out;
}

const logFile = (name: string) => path.join(logDir, `${name}.log`);
const stdoutOf = (name: string) => parseCriLog(logFile(name)).filter((l) => l.stream === 'stdout').map((l) => l.content);
const stderrOf = (name: string) => parseCriLog(logFile(name)).filter((l) => l.stream === 'stderr').map((l) => l.content);

interface Ran {
  id: string;
  status: ContainerStatus;
  stdout: string[];
  stderr: string[];
}

/** Create, start, wait for the exit; returns the final status and the container's output from its log file. */
async function run(podId: string, name: string, more: DeepPartial<ContainerConfig> = {}): Promise<Ran> {
  const id = await create(podId, ctrConfig(name, more));
  await client.runtime.startContainer({ containerId: id });
  const s = await waitExited(id);
  return { id, status: s, stdout: stdoutOf(name), stderr: stderrOf(name) };
}

const shell = (script: string) => ({ command: ['sh', '-c', script] });

async function ctr(...args: string[]): Promise<string[]> {
  const { stdout } = await execFileP('ctr', ['--address', h.containerd.address, '-n', NS, ...args], { timeout: 20_000 });
  return stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** containerd's objects in the test namespace: container IDs, task IDs, snapshot keys. */
async function containerdObjects(): Promise<{ containers: string[]; tasks: string[]; snapshots: string[] }> {
  const [containers, tasks, snapshots] = await Promise.all([
    ctr('containers', 'ls', '-q'),
    ctr('tasks', 'ls').then((l) => l.slice(1).map((x) => x.split(/\s+/)[0]!)),
    ctr('snapshots', '--snapshotter', 'overlayfs', 'ls').then((l) => l.slice(1).map((x) => x.split(/\s+/)[0]!)),
  ]);
  return { containers: containers.sort(), tasks: tasks.sort(), snapshots: snapshots.sort() };
}

/** CapEff of the first process, from the `grep CapEff /proc/self/status` line it printed. */
function capEff(lines: string[]): bigint {
  const line = lines.find((l) => l.startsWith('CapEff:'));
  if (!line) throw new Error(`no CapEff line in ${JSON.stringify(lines)}`);
  return BigInt(`0x${line.split(/\s+/)[1]}`);
}
const hasBit = (mask: bigint, bit: number) => ((mask >> BigInt(bit)) & 1n) === 1n;

// ---------------------------------------------------------------------------

beforeAll(async () => {
  adapterDir = mkdtempSync(path.join(h.tmpDir, 'adapter-ctr-'));
  logDir = mkdtempSync(path.join(h.tmpDir, 'ctr-logs-'));
  const base = busyboxImage();
  const ep = reconfigured(base, {
    Entrypoint: ['echo', 'ep'],
    Cmd: ['cmd'],
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'FROM_IMAGE=image', 'OVERRIDDEN=image'],
    WorkingDir: '/home/app',
  });
  const user = reconfigured(base, { User: 'app' });
  const [epPushed, userPushed] = await Promise.all([
    pushImage(h.registry.host, 'cri-adapter-test/ctr-entrypoint', 'latest', ep),
    pushImage(h.registry.host, 'cri-adapter-test/ctr-user', 'latest', user),
  ]);
  await launchAdapter();
  busybox = h.images.busybox;
  epImage = epPushed.reference;
  userImage = userPushed.reference;
  await Promise.all([busybox, epImage, userImage].map((image) => client.image.pullImage(PullImageRequest.fromPartial({ image: { image } }))));
  pod = await runPod('main');
}, 120_000);

afterAll(async () => {
  try {
    if (client) {
      for (const id of [...pods.keys()]) await removePod(id).catch(() => undefined);
      // Every pod is gone, and its containers with it.
      const left = await containerdObjects();
      await adapter.stop();
      expect(left.containers).toEqual([]);
      expect(left.tasks).toEqual([]);
    }
  } finally {
    if (logDir) rmSync(logDir, { recursive: true, force: true });
  }
}, 60_000);

// ---------------------------------------------------------------------------

describe('process', () => {
  test('command and args override the image entrypoint and cmd as the kubelet defines', async () => {
    const [none, argsOnly, commandOnly, both] = await Promise.all([
      run(pod, 'ep-none', { image: { image: epImage } }),
      run(pod, 'ep-args', { image: { image: epImage }, args: ['a1', 'a2'] }),
      run(pod, 'ep-command', { image: { image: epImage }, command: ['echo', 'c1'] }),
      run(pod, 'ep-both', { image: { image: epImage }, command: ['echo', 'c1'], args: ['a1'] }),
    ]);
    expect(none.stdout).toEqual(['ep cmd']);
    expect(argsOnly.stdout).toEqual(['ep a1 a2']);
    expect(commandOnly.stdout).toEqual(['c1']);
    expect(both.stdout).toEqual(['c1 a1']);
    for (const r of [none, argsOnly, commandOnly, both]) {
      expect(r.status.exitCode).toBe(0);
      expect(r.status.reason).toBe('Completed');
    }
  });

  test('environment: image env first, config env overrides it; working dir from the image or the config', async () => {
    const script = 'echo FROM_IMAGE=$FROM_IMAGE; echo OVERRIDDEN=$OVERRIDDEN; echo FROM_CONFIG=$FROM_CONFIG; echo PATH=$PATH; pwd';
    const envs = [
      { key: 'OVERRIDDEN', value: Buffer.from('config') },
      { key: 'FROM_CONFIG', value: Buffer.from('a b=c') },
    ];
    const [imageDir, configDir] = await Promise.all([
      run(pod, 'env-image-wd', { image: { image: epImage }, ...shell(script), envs }),
      run(pod, 'env-config-wd', { image: { image: epImage }, ...shell(script), envs, workingDir: '/tmp' }),
    ]);
    expect(imageDir.stdout).toEqual([
      'FROM_IMAGE=image',
      'OVERRIDDEN=config',
      'FROM_CONFIG=a b=c',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '/home/app',
    ]);
    expect(configDir.stdout[4]).toBe('/tmp');
  });

  test('stdout and stderr land in the log file as separate CRI streams, long lines split as partials', async () => {
    const r = await run(pod, 'streams', shell('echo to-out; echo to-err >&2; printf "no-newline"'));
    expect(r.stdout).toEqual(['to-out', 'no-newline']);
    expect(r.stderr).toEqual(['to-err']);
    const raw = readFileSync(logFile('streams'), 'utf8').trim().split('\n');
    expect(raw.map((l) => l.split(' ').slice(1, 3).join(' ')).sort()).toEqual(['stderr F', 'stdout F', 'stdout P']);
    expect(raw.find((l) => l.includes(' stdout P '))).toMatch(/ stdout P no-newline$/);
    for (const line of raw) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) [PF] /);

    // 40000 bytes on one line: split into partial records (max line 16 KiB), joined back by the parser.
    const long = await run(pod, 'long-line', shell('head -c 40000 /dev/zero | tr "\\0" a; echo; echo next'));
    expect(long.stdout).toEqual(['a'.repeat(40000), 'next']);
    const tags = readFileSync(logFile('long-line'), 'utf8').trim().split('\n').map((l) => l.split(' ')[2]);
    expect(tags).toEqual(['P', 'P', 'F', 'F']);
  });
});

describe('user', () => {
  test('run_as_user, run_as_username and the image User resolve uid, gid and groups from the image', async () => {
    const [byUid, byName, byImage, root, withGroup] = await Promise.all([
      run(pod, 'user-uid', { command: ['id'], linux: { securityContext: { runAsUser: { value: 1000n } } } }),
      run(pod, 'user-name', { command: ['id'], linux: { securityContext: { runAsUsername: 'app' } } }),
      run(pod, 'user-image', { image: { image: userImage }, command: ['id'] }),
      run(pod, 'user-root', { command: ['id'] }),
      // runAsGroup replaces the primary group; groups: it, the image groups listing the user, supplemental ones.
      run(pod, 'user-group', {
        command: ['id'],
        linux: { securityContext: { runAsUser: { value: 1000n }, runAsGroup: { value: 2000n }, supplementalGroups: [3000n] } },
      }),
    ]);
    const expected = 'uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)';
    expect(byUid.stdout).toEqual([expected]);
    expect(byName.stdout).toEqual([expected]);
    expect(byImage.stdout).toEqual([expected]);
    expect(root.stdout).toEqual(['uid=0(root) gid=0(root) groups=0(root)']);
    expect(withGroup.stdout).toEqual(['uid=1000(app) gid=2000(extra) groups=2000(extra),3000']);
    for (const r of [byUid, byName, byImage]) {
      expect(r.status.user?.linux).toEqual({ uid: 1000n, gid: 1000n, supplementalGroups: [1000n, 2000n] });
    }
    expect(root.status.user?.linux).toEqual({ uid: 0n, gid: 0n, supplementalGroups: [0n] });
    expect(withGroup.status.user?.linux).toEqual({ uid: 1000n, gid: 2000n, supplementalGroups: [2000n, 3000n] });
  });

  test('a later container of an image resolves its user from the /etc files an earlier one read', async () => {
    // The first container of the image reads /etc/passwd and /etc/group through its snapshot; later ones
    // use what it read and are created before their snapshot exists.
    const config = { image: { image: userImage }, command: ['id'], linux: { securityContext: { runAsUsername: 'app' } } };
    const first = await run(pod, 'user-etc-first', config);
    const later = await run(pod, 'user-etc-later', config);
    expect(first.stdout).toEqual(['uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)']);
    expect(later.stdout).toEqual(first.stdout);
    expect(later.status.user?.linux).toEqual({ uid: 1000n, gid: 1000n, supplementalGroups: [1000n, 2000n] });
  });

  test('a user name the image does not know is refused at create', async () => {
    const err = await criError(create(pod, ctrConfig('user-unknown', { linux: { securityContext: { runAsUsername: 'nosuchuser' } } })));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.details).toContain('nosuchuser');
  });
});

describe('security', () => {
  test('a read-only rootfs refuses writes; a writable one accepts them', async () => {
    const [ro, rw] = await Promise.all([
      run(pod, 'rootfs-ro', { ...shell('touch /x'), linux: { securityContext: { readonlyRootfs: true } } }),
      run(pod, 'rootfs-rw', shell('touch /x && echo wrote')),
    ]);
    expect(ro.status.exitCode).not.toBe(0);
    expect(ro.status.reason).toBe('Error');
    expect(ro.stderr.join('\n')).toMatch(/Read-only file system/);
    expect(rw.status.exitCode).toBe(0);
    expect(rw.stdout).toEqual(['wrote']);
  });

  test('capabilities: drop CHOWN removes bit 0, add NET_ADMIN sets bit 12; CAP_SYS_RESOURCE cannot be granted here', async () => {
    const grep = shell('grep CapEff /proc/self/status');
    const [dflt, dropped, added] = await Promise.all([
      run(pod, 'caps-default', grep),
      run(pod, 'caps-drop', { ...grep, linux: { securityContext: { capabilities: { dropCapabilities: ['CHOWN'] } } } }),
      run(pod, 'caps-add', { ...grep, linux: { securityContext: { capabilities: { addCapabilities: ['CAP_NET_ADMIN'] } } } }),
    ]);
    const d = capEff(dflt.stdout);
    expect(hasBit(d, 0)).toBe(true);
    expect(hasBit(d, 12)).toBe(false);
    const dr = capEff(dropped.stdout);
    expect(hasBit(dr, 0)).toBe(false);
    expect(dr).toBe(d & ~1n);
    const ad = capEff(added.stdout);
    expect(hasBit(ad, 12)).toBe(true);
    expect(ad).toBe(d | (1n << 12n));

    // The adapter itself lacks CAP_SYS_RESOURCE (field notes): refused up front, with the reason.
    const before = await containerdObjects();
    const err = await criError(
      create(pod, ctrConfig('caps-sys-resource', { linux: { securityContext: { capabilities: { addCapabilities: ['SYS_RESOURCE'] } } } })),
    );
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.details).toMatch(/CAP_SYS_RESOURCE is not available/);
    expect(await containerdObjects()).toEqual(before);
  });

  test('a privileged container sees the host devices; an unprivileged one does not', async () => {
    const privPod = await runPod('privileged', { linux: { securityContext: { privileged: true } } });
    const probe = shell('ls /dev/kmsg /dev/loop0 /dev/loop-control');
    const [priv, unpriv, unprivInPrivPod] = await Promise.all([
      run(privPod, 'dev-privileged', { ...probe, linux: { securityContext: { privileged: true } } }),
      run(pod, 'dev-unprivileged', probe),
      run(privPod, 'dev-unprivileged-in-priv-pod', probe),
    ]);
    expect(priv.status.exitCode).toBe(0);
    expect(priv.stdout).toEqual(['/dev/kmsg', '/dev/loop-control', '/dev/loop0']);
    expect(unpriv.status.exitCode).not.toBe(0);
    expect(unpriv.stdout).toEqual([]);
    expect(unprivInPrivPod.status.exitCode).not.toBe(0);
    // A privileged container needs a privileged pod.
    const err = await criError(create(pod, ctrConfig('dev-priv-in-plain-pod', { linux: { securityContext: { privileged: true } } })));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    await removePod(privPod);
  });
});

describe('pid namespace', () => {
  test('POD-shared sees the pause process; CONTAINER is PID 1 of its own', async () => {
    const script = 'echo pid=$$; ps -o pid,args';
    const [shared, own] = await Promise.all([
      run(pod, 'pid-pod', { ...shell(script), linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.POD } } } }),
      run(pod, 'pid-container', { ...shell(script), linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.CONTAINER } } } }),
    ]);
    expect(shared.stdout.some((l) => /^\s*1\s+\/pause\b/.test(l))).toBe(true);
    expect(shared.stdout[0]).not.toBe('pid=1');
    expect(own.stdout[0]).toBe('pid=1');
    expect(own.stdout.some((l) => l.includes('/pause'))).toBe(false);
  });
});

describe('exits and stops', () => {
  test('exit 0 is Completed, non-zero is Error; created < started < finished', async () => {
    const [ok, bad] = await Promise.all([run(pod, 'exit-0', shell('exit 0')), run(pod, 'exit-3', shell('echo bye; exit 3'))]);
    expect(ok.status.exitCode).toBe(0);
    expect(ok.status.reason).toBe('Completed');
    expect(bad.status.exitCode).toBe(3);
    expect(bad.status.reason).toBe('Error');
    expect(bad.stdout).toEqual(['bye']);
    for (const r of [ok, bad]) {
      expect(r.status.createdAt).toBeGreaterThan(0n);
      expect(r.status.startedAt).toBeGreaterThan(r.status.createdAt);
      expect(r.status.finishedAt).toBeGreaterThan(r.status.startedAt);
    }
  });

  test('EXITED is reported only once all of the output is in the log file', async () => {
    // 2 MB of output right before the exit; the status is polled without pause and the log read at once.
    const name = 'exit-drain';
    const id = await create(pod, ctrConfig(name, shell('yes 0123456789012345678901234567890123456789 | head -n 50000; echo last')));
    await client.runtime.startContainer({ containerId: id });
    for (;;) {
      const s = await status(id);
      if (s.state === ContainerState.CONTAINER_EXITED) break;
    }
    const out = stdoutOf(name);
    expect(out.length).toBe(50001);
    expect(out[out.length - 1]).toBe('last');
  });

  test('memory limit exceeded: OOMKilled', async () => {
    const r = await run(pod, 'oom', {
      // The shell doubles a string until the 16 MiB cgroup limit makes the kernel kill it.
      ...shell('echo start; x=0123456789abcdef; while :; do x=$x$x; done'),
      linux: { resources: { memoryLimitInBytes: BigInt(16 * MiB) } },
    });
    expect(r.stdout).toEqual(['start']);
    expect(r.status.reason).toBe('OOMKilled');
    expect(r.status.exitCode).toBe(137);
  });

  /** Starts a long-running shell and waits until its `ready` line is in the log (so its traps are set). */
  async function startReady(name: string, script: string): Promise<string> {
    const id = await create(pod, ctrConfig(name, shell(`${script}; echo ready; while :; do sleep 0.1; done`)));
    await client.runtime.startContainer({ containerId: id });
    await waitFor(`${name} ready`, async () => (stdoutOf(name).includes('ready') ? true : undefined));
    return id;
  }

  async function timedStop(id: string, timeout: number): Promise<number> {
    const t0 = performance.now();
    await client.runtime.stopContainer({ containerId: id, timeout: BigInt(timeout) });
    return performance.now() - t0;
  }

  test('SIGTERM trapped: exits within the grace period, Completed', async () => {
    const id = await startReady('stop-trap', 'trap "echo got-term; exit 0" TERM');
    const ms = await timedStop(id, 10);
    expect(ms).toBeLessThan(3000);
    const s = await status(id);
    expect(s.state).toBe(ContainerState.CONTAINER_EXITED);
    expect(s.exitCode).toBe(0);
    expect(s.reason).toBe('Completed');
    expect(stdoutOf('stop-trap')).toContain('got-term');
  });

  test('SIGTERM ignored: killed when the timeout runs out (137); timeout 0 kills at once', async () => {
    const [slow, quick] = await Promise.all([
      startReady('stop-ignore', 'trap "" TERM'),
      startReady('stop-ignore-now', 'trap "" TERM'),
    ]);
    const [slowMs, quickMs] = await Promise.all([timedStop(slow, 2), timedStop(quick, 0)]);
    expect(slowMs).toBeGreaterThanOrEqual(1900);
    expect(slowMs).toBeLessThan(4500);
    expect(quickMs).toBeLessThan(1000);
    for (const id of [slow, quick]) {
      const s = await status(id);
      expect(s.state).toBe(ContainerState.CONTAINER_EXITED);
      expect(s.exitCode).toBe(137);
      expect(s.reason).toBe('Error');
    }
  });

  test('the image StopSignal is sent and reported', async () => {
    // StopSignal USR1: a shell that only traps USR1 exits 0 on stop.
    const img = reconfigured(busyboxImage(), { StopSignal: 'SIGUSR1' });
    const pushed = await pushImage(h.registry.host, 'cri-adapter-test/ctr-stopsignal', 'latest', img);
    await client.image.pullImage(PullImageRequest.fromPartial({ image: { image: pushed.reference } }));
    const id = await create(pod, ctrConfig('stop-usr1', { image: { image: pushed.reference }, ...shell('trap "echo got-usr1; exit 0" USR1; trap "" TERM; echo ready; while :; do sleep 0.1; done') }));
    await client.runtime.startContainer({ containerId: id });
    await waitFor('ready', async () => (stdoutOf('stop-usr1').includes('ready') ? true : undefined));
    expect((await status(id)).stopSignal).toBe(Signal.SIGNAL_SIGUSR1);
    const ms = await timedStop(id, 10);
    expect(ms).toBeLessThan(3000);
    expect(stdoutOf('stop-usr1')).toContain('got-usr1');
    expect((await status(id)).exitCode).toBe(0);
  });

  test('stopping an exited, a never-started or an unknown container succeeds', async () => {
    const exited = await run(pod, 'stop-exited', shell('exit 5'));
    await client.runtime.stopContainer({ containerId: exited.id, timeout: 1n });
    expect((await status(exited.id)).exitCode).toBe(5);
    const created = await create(pod, ctrConfig('stop-created', shell('exit 0')));
    await client.runtime.stopContainer({ containerId: created, timeout: 1n });
    expect((await status(created)).state).toBe(ContainerState.CONTAINER_CREATED);
    await client.runtime.stopContainer({ containerId: 'f'.repeat(64), timeout: 1n });
  });
});

describe('validation', () => {
  test('bad requests fail with the right code and leave nothing in containerd', async () => {
    const stoppedPod = await runPod('stopped');
    await client.runtime.stopPodSandbox({ podSandboxId: stoppedPod });
    const before = await containerdObjects();

    const cases: Array<{ what: string; call: () => Promise<unknown>; code: number; message?: RegExp | string }> = [
      { what: 'no metadata.name', call: () => create(pod, { ...ctrConfig('x'), metadata: { name: '' } }), code: Code.INVALID_ARGUMENT },
      { what: 'no image', call: () => create(pod, { ...ctrConfig('no-image'), image: { image: '' } }), code: Code.INVALID_ARGUMENT },
      { what: 'unknown sandbox', call: () => create('0'.repeat(64), ctrConfig('unknown-pod')), code: Code.NOT_FOUND },
      { what: 'stopped sandbox', call: () => create(stoppedPod, ctrConfig('stopped-pod')), code: Code.FAILED_PRECONDITION },
      {
        what: 'missing image',
        call: () => create(pod, ctrConfig('missing-image', { image: { image: `${h.registry.host}/cri-adapter-test/never-pulled:1` } })),
        code: Code.NOT_FOUND,
        message: `${h.registry.host}/cri-adapter-test/never-pulled:1`,
      },
      { what: 'log path escaping', call: () => create(pod, ctrConfig('escape', { logPath: '../escape.log' })), code: Code.INVALID_ARGUMENT },
      { what: 'absolute log path', call: () => create(pod, ctrConfig('abs', { logPath: '/tmp/abs.log' })), code: Code.INVALID_ARGUMENT },
      {
        what: 'missing seccomp profile',
        call: () =>
          create(pod, ctrConfig('seccomp', {
            ...shell('exit 0'),
            linux: { securityContext: { seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: '/nonexistent/profile.json' } } },
          })),
        code: Code.INVALID_ARGUMENT,
        message: '/nonexistent/profile.json',
      },
    ];
    for (const c of cases) {
      const err = await criError(c.call());
      expect({ what: c.what, code: err.code }).toEqual({ what: c.what, code: c.code });
      if (typeof c.message === 'string') expect(err.details).toContain(c.message);
      expect(await containerdObjects()).toEqual(before);
    }
    expect(existsSync(path.join(path.dirname(logDir), 'escape.log'))).toBe(false);

    // The failed seccomp create released its name: the same name with a good config works.
    const ok = await create(pod, ctrConfig('seccomp', shell('exit 0')));
    // A second container under a taken name is refused, and leaves nothing behind either.
    const withOne = await containerdObjects();
    const dup = await criError(create(pod, ctrConfig('seccomp', shell('exit 0'))));
    expect(dup.code).toBe(Code.ALREADY_EXISTS);
    expect(await containerdObjects()).toEqual(withOne);
    await client.runtime.removeContainer({ containerId: ok });
    expect(await containerdObjects()).toEqual(before);

    // Calls on unknown containers.
    const unknown = 'e'.repeat(64);
    expect((await criError(client.runtime.startContainer({ containerId: unknown }))).code).toBe(Code.NOT_FOUND);
    expect((await criError(client.runtime.containerStatus(ContainerStatusRequest.fromPartial({ containerId: unknown })))).code).toBe(Code.NOT_FOUND);
    await client.runtime.removeContainer({ containerId: unknown });
    await removePod(stoppedPod);
  });

  test('a command that cannot run: StartContainer fails, the container is EXITED with StartError, no task is left', async () => {
    const id = await create(pod, ctrConfig('start-error', { command: ['/no/such/binary'] }));
    const err = await criError(client.runtime.startContainer({ containerId: id }));
    expect(err.details).toMatch(/no such file or directory/);
    const s = await status(id);
    expect(s.state).toBe(ContainerState.CONTAINER_EXITED);
    expect(s.reason).toBe('StartError');
    expect(s.exitCode).toBe(128);
    expect(s.message).toMatch(/\/no\/such\/binary/);
    expect((await containerdObjects()).tasks).not.toContain(id);
    expect(readdirSync(path.join(adapterDir, 'state', 'fifo')).filter((f) => f.startsWith(id))).toEqual([]);
    await client.runtime.removeContainer({ containerId: id });
  });

  test('starting a container twice is refused', async () => {
    const r = await run(pod, 'start-twice', shell('exit 0'));
    expect((await criError(client.runtime.startContainer({ containerId: r.id }))).code).toBe(Code.FAILED_PRECONDITION);
  });
});

describe('list', () => {
  test('ListContainers filters by id prefix, state, pod and labels; StreamContainers sends each once', async () => {
    const other = await runPod('list');
    const a = await create(other, ctrConfig('list-a', { labels: { tier: 'a', app: 'x' }, ...shell('sleep 60') }));
    const b = await create(other, ctrConfig('list-b', { labels: { tier: 'b', app: 'x' }, ...shell('sleep 60') }));
    const c = await create(other, ctrConfig('list-c', { labels: { tier: 'a', app: 'y' }, ...shell('exit 0') }));
    await client.runtime.startContainer({ containerId: a });
    await client.runtime.startContainer({ containerId: c });
    await waitExited(c);
    const ids = async (filter: DeepPartial<ListContainersRequest['filter']>) =>
      (await client.runtime.listContainers(ListContainersRequest.fromPartial({ filter }))).containers.map((x) => x.id).sort();
    const sorted = (...xs: string[]) => xs.sort();

    expect(await ids({ id: a.slice(0, 12) })).toEqual([a]);
    expect(await ids({ podSandboxId: other })).toEqual(sorted(a, b, c));
    expect(await ids({ podSandboxId: other.slice(0, 12) })).toEqual(sorted(a, b, c));
    expect(await ids({ podSandboxId: other, state: { state: ContainerState.CONTAINER_RUNNING } })).toEqual([a]);
    expect(await ids({ podSandboxId: other, state: { state: ContainerState.CONTAINER_CREATED } })).toEqual([b]);
    expect(await ids({ podSandboxId: other, state: { state: ContainerState.CONTAINER_EXITED } })).toEqual([c]);
    expect(await ids({ labelSelector: { tier: 'a' } })).toEqual(sorted(a, c));
    expect(await ids({ labelSelector: { tier: 'a', app: 'y' } })).toEqual([c]);
    expect(await ids({ labelSelector: { tier: 'z' } })).toEqual([]);
    expect(await ids({ id: a, podSandboxId: pod })).toEqual([]);

    const listed = await client.runtime.listContainers(ListContainersRequest.fromPartial({ filter: { podSandboxId: other } }));
    const byId = new Map(listed.containers.map((x) => [x.id, x]));
    expect(byId.get(a)?.metadata?.name).toBe('list-a');
    expect(byId.get(a)?.labels).toEqual({ tier: 'a', app: 'x' });
    expect(byId.get(a)?.podSandboxId).toBe(other);
    expect(byId.get(b)?.image?.image).toBe(busybox);

    // StreamContainers: all containers, each exactly once.
    const batches = await client.stream((md, o) => client.raw.runtime.streamContainers(StreamContainersRequest.fromPartial({}), md, o));
    const streamed = batches.flatMap((m) => m.containers.map((x) => x.id));
    const all = await ids({});
    expect(streamed.length).toBe(new Set(streamed).size);
    expect([...streamed].sort()).toEqual(all);
    expect(all).toEqual(expect.arrayContaining([a, b, c]));

    await removePod(other);
    expect(await ids({ podSandboxId: other })).toEqual([]);
  });
});

describe('resources', () => {
  test('UpdateContainerResources changes the running container’s memory limit', async () => {
    const name = 'update-mem';
    const id = await create(pod, ctrConfig(name, {
      ...shell('while :; do cat /sys/fs/cgroup/memory/memory.limit_in_bytes; sleep 0.1; done'),
      linux: { resources: { memoryLimitInBytes: BigInt(64 * MiB) } },
    }));
    await client.runtime.startContainer({ containerId: id });
    await waitFor('first limit line', async () => (stdoutOf(name).length > 0 ? true : undefined));
    expect(stdoutOf(name)[0]).toBe(String(64 * MiB));
    await client.runtime.updateContainerResources(
      UpdateContainerResourcesRequest.fromPartial({ containerId: id, linux: { memoryLimitInBytes: BigInt(96 * MiB) } }),
    );
    await waitFor('the new limit inside the container', async () => (stdoutOf(name).includes(String(96 * MiB)) ? true : undefined), { timeoutMs: 5000 });
    // Down again, below the first value (cgroup v1 wants memsw >= mem: the order of the writes matters).
    await client.runtime.updateContainerResources(
      UpdateContainerResourcesRequest.fromPartial({ containerId: id, linux: { memoryLimitInBytes: BigInt(48 * MiB) } }),
    );
    await waitFor('the lower limit inside the container', async () => (stdoutOf(name).includes(String(48 * MiB)) ? true : undefined), { timeoutMs: 5000 });
    await client.runtime.updateContainerResources(
      UpdateContainerResourcesRequest.fromPartial({ containerId: id, linux: { memoryLimitInBytes: BigInt(96 * MiB) } }),
    );
    await waitFor('the limit back up', async () => (stdoutOf(name).slice(-1)[0] === String(96 * MiB) ? true : undefined), { timeoutMs: 5000 });
    const s = await client.runtime.containerStatus(ContainerStatusRequest.fromPartial({ containerId: id, verbose: true }));
    expect(s.status?.resources?.linux?.memoryLimitInBytes).toBe(BigInt(96 * MiB));
    const spec = JSON.parse(s.info.info!).runtimeSpec as { linux: { resources: { memory: { limit: number } } } };
    expect(spec.linux.resources.memory.limit).toBe(96 * MiB);
    await client.runtime.stopContainer({ containerId: id, timeout: 0n });
    await client.runtime.removeContainer({ containerId: id });
  });
});

describe('events', () => {
  test('GetContainerEvents: created, started, stopped, deleted in order, with the pod status', async () => {
    const events: ContainerEventResponse[] = [];
    const stream = client.raw.runtime.getContainerEvents(GetEventsRequest.fromPartial({}));
    stream.on('data', (e: ContainerEventResponse) => events.push(e));
    stream.on('error', () => undefined);
    try {
      // The stream is registered once the server has seen the call; give it a moment.
      await new Promise((r) => setTimeout(r, 200));
      const r = await run(pod, 'events', shell('exit 0'));
      await client.runtime.removeContainer({ containerId: r.id });
      const mine = await waitFor('four events', async () => {
        const m = events.filter((e) => e.containerId === r.id);
        return m.length >= 4 ? m : undefined;
      }, { timeoutMs: 5000 });
      expect(mine.map((e) => e.containerEventType)).toEqual([
        ContainerEventType.CONTAINER_CREATED_EVENT,
        ContainerEventType.CONTAINER_STARTED_EVENT,
        ContainerEventType.CONTAINER_STOPPED_EVENT,
        ContainerEventType.CONTAINER_DELETED_EVENT,
      ]);
      const states = [ContainerState.CONTAINER_CREATED, ContainerState.CONTAINER_RUNNING, ContainerState.CONTAINER_EXITED, ContainerState.CONTAINER_EXITED];
      mine.forEach((e, i) => {
        expect(e.podSandboxStatus?.id).toBe(pod);
        expect(e.podSandboxStatus?.state).toBe(PodSandboxState.SANDBOX_READY);
        expect(e.podSandboxStatus?.metadata?.name).toBe('main');
        expect(e.createdAt).toBeGreaterThan(0n);
        const own = e.containersStatuses.find((s) => s.id === r.id);
        expect(own?.state).toBe(states[i]);
      });
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.createdAt).toBeGreaterThanOrEqual(mine[i - 1]!.createdAt);
    } finally {
      stream.cancel();
    }
  });
});

describe('life cycle', () => {
  test('create, start, stop, remove leaves nothing in containerd or in the adapter’s dirs', async () => {
    const before = await containerdObjects();
    const id = await create(pod, ctrConfig('cycle', shell('sleep 60')));
    const during = await containerdObjects();
    expect(during.containers).toContain(id);
    expect(during.snapshots).toContain(id);
    await client.runtime.startContainer({ containerId: id });
    expect((await containerdObjects()).tasks).toContain(id);
    expect((await status(id)).state).toBe(ContainerState.CONTAINER_RUNNING);
    await client.runtime.stopContainer({ containerId: id, timeout: 0n });
    const stopped = await containerdObjects();
    expect(stopped.tasks).not.toContain(id);
    await client.runtime.removeContainer({ containerId: id });
    expect(await containerdObjects()).toEqual(before);
    const fifoDir = path.join(adapterDir, 'state', 'fifo');
    expect(existsSync(fifoDir) ? readdirSync(fifoDir).filter((f) => f.includes(id)) : []).toEqual([]);
    expect(existsSync(path.join(adapterDir, 'root', 'containers', id))).toBe(false);
    expect((await criError(status(id))).code).toBe(Code.NOT_FOUND);
    // The log file belongs to the kubelet: it stays.
    expect(existsSync(logFile('cycle'))).toBe(true);
    // Removing twice is fine.
    await client.runtime.removeContainer({ containerId: id });
  });

  test('RemovePodSandbox removes its containers, running or not', async () => {
    const p = await runPod('cycle-pod');
    const running = await create(p, ctrConfig('cycle-running', shell('sleep 60')));
    const created = await create(p, ctrConfig('cycle-created', shell('sleep 60')));
    await client.runtime.startContainer({ containerId: running });
    await removePod(p);
    const left = await containerdObjects();
    for (const id of [running, created]) {
      expect(left.containers).not.toContain(id);
      expect(left.tasks).not.toContain(id);
      expect(left.snapshots).not.toContain(id);
    }
    expect(left.containers).not.toContain(p);
    const listed = await client.runtime.listContainers(ListContainersRequest.fromPartial({ filter: { podSandboxId: p } }));
    expect(listed.containers).toEqual([]);
  });
});

describe('adapter crash', () => {
  test('kill -9 while one container runs and another exits: statuses and logs after restart', async () => {
    const ticker = await create(pod, ctrConfig('crash-ticker', shell('i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done')));
    const exiter = await create(pod, ctrConfig('crash-exiter', shell('echo before; sleep 2; echo after; exit 7')));
    await client.runtime.startContainer({ containerId: ticker });
    await client.runtime.startContainer({ containerId: exiter });
    await waitFor('ticks and before', async () => (stdoutOf('crash-ticker').length >= 2 && stdoutOf('crash-exiter').includes('before') ? true : undefined));
    await adapter.kill();
    const ticksAtKill = stdoutOf('crash-ticker').length;
    await new Promise((r) => setTimeout(r, 3000));
    // Nobody copied the output meanwhile.
    expect(stdoutOf('crash-ticker').length).toBeLessThanOrEqual(ticksAtKill + 1);

    await launchAdapter();
    const t = await status(ticker);
    expect(t.state).toBe(ContainerState.CONTAINER_RUNNING);
    const e = await waitExited(exiter, 5000);
    expect(e.exitCode).toBe(7);
    expect(e.reason).toBe('Error');
    expect(e.finishedAt).toBeGreaterThan(e.startedAt);
    // What the exiter wrote while nobody read its FIFO is gone: when the process exited, the shim
    // closed both of its ends of the FIFO, and a pipe nobody holds open drops its buffer. (The
    // ticker's output survives because the shim still holds those ends; see below.)
    expect(stdoutOf('crash-exiter')[0]).toBe('before');

    // The ticker's log keeps growing, and nothing written during the outage was lost.
    const n = stdoutOf('crash-ticker').length;
    await waitFor('new ticks', async () => (stdoutOf('crash-ticker').length > n + 5 ? true : undefined), { timeoutMs: 5000 });
    const ticks = stdoutOf('crash-ticker');
    ticks.forEach((l, i) => expect(l).toBe(`tick ${i}`));
    expect(ticks.length).toBeGreaterThan(ticksAtKill + 20);

    // Stop and events still work on recovered containers.
    await client.runtime.stopContainer({ containerId: ticker, timeout: 0n });
    expect((await status(ticker)).exitCode).toBe(137);
    await client.runtime.removeContainer({ containerId: ticker });
    await client.runtime.removeContainer({ containerId: exiter });
  });
});
