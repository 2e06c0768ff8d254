/**
 * Pod user namespaces (`userns_options` mode POD) through the CRI API of the
 * built daemon, against the harness's real containerd, runc and CNI. Every
 * test looks at the running pod from inside (what its processes see) and
 * from the host (/proc/<pid>/status and uid_map of the pause and container
 * processes, file owners on the host, containerd's snapshots).
 *
 * The image under test is busybox plus a layer of files whose owners and
 * modes the remapped copy must carry over: a set-user-ID file, a directory
 * of UID 1000, hard links, a file owned by an ID outside the pod's range.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { status as Code } from '@grpc/grpc-js';
import {
  ContainerConfig,
  ContainerState,
  CreateContainerRequest,
  DeepPartial,
  ListContainersRequest,
  NamespaceMode,
  NamespaceOption,
  PodSandboxConfig,
  PullImageRequest,
  RemoveImageRequest,
  RunPodSandboxRequest,
} from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import { buildImage, busyboxImage, pushImage } from '../harness/images';
import { AdapterProcess, startAdapter } from '../support/adapter-process';
import { CriClient, criError } from '../support/cri-client';
import { podConfig, runPod as runSharedPod } from '../support/pods';
import { waitFor } from '../harness/util';
import { harnessAdapterArgs } from '../support/harness-adapter';

const execFileP = promisify(execFile);
const h = loadHarnessEnv();
const NS = 'cri-adapter-it-userns';
const POD_NAMESPACE = 'userns-test';
const HOST_ID = 200000;
const LENGTH = 65536;
const OTHER_HOST_ID = 400000;

let adapter: AdapterProcess;
let client: CriClient;
let logDir: string;
let image: string;
let imageId: string;
const pods = new Map<string, PodSandboxConfig>();

const mapping = (hostId: number, containerId = 0, length = LENGTH) => ({ hostId, containerId, length });
const userns = (hostId: number): DeepPartial<NamespaceOption> => ({
  pid: NamespaceMode.CONTAINER,
  usernsOptions: { mode: NamespaceMode.POD, uids: [mapping(hostId)], gids: [mapping(hostId)] },
});

function usernsPod(name: string, namespaceOptions: DeepPartial<NamespaceOption>): PodSandboxConfig {
  return podConfig(POD_NAMESPACE, name, { logDirectory: logDir, linux: { securityContext: { namespaceOptions } } });
}

async function runPod(name: string, hostId: number): Promise<string> {
  const config = usernsPod(name, userns(hostId));
  const podSandboxId = await runSharedPod(client, config);
  pods.set(podSandboxId, config);
  return podSandboxId;
}

async function removePod(id: string): Promise<void> {
  await client.runtime.stopPodSandbox({ podSandboxId: id });
  await client.runtime.removePodSandbox({ podSandboxId: id });
  pods.delete(id);
}

/** A container as the kubelet sends it for such a pod: the pod's namespace options repeated. */
async function startContainer(podId: string, name: string, more: DeepPartial<ContainerConfig> = {}): Promise<string> {
  const sandboxConfig = pods.get(podId)!;
  const config: DeepPartial<ContainerConfig> = {
    metadata: { name },
    image: { image },
    logPath: `${name}.log`,
    command: ['sh', '-c', 'id; cat /proc/self/uid_map; exec sleep 3600'],
    linux: { securityContext: { namespaceOptions: sandboxConfig.linux!.securityContext!.namespaceOptions! } },
    ...more,
  };
  const { containerId } = await client.runtime.createContainer(CreateContainerRequest.fromPartial({ podSandboxId: podId, config, sandboxConfig }));
  await client.runtime.startContainer({ containerId });
  return containerId;
}

async function sh(containerId: string, script: string): Promise<{ out: string; err: string; code: number }> {
  const r = await client.runtime.execSync({ containerId, cmd: ['sh', '-c', script], timeout: 0n });
  return { out: r.stdout.toString(), err: r.stderr.toString(), code: r.exitCode };
}

async function containerPid(id: string): Promise<number> {
  const r = await client.runtime.containerStatus({ containerId: id, verbose: true });
  return (JSON.parse(r.info.info!) as { pid: number }).pid;
}

async function sandboxPid(id: string): Promise<number> {
  const r = await client.runtime.podSandboxStatus({ podSandboxId: id, verbose: true });
  return (JSON.parse(r.info.info!) as { pid: number }).pid;
}

/** The Uid: or Gid: line of /proc/<pid>/status: real, effective, saved, filesystem. */
function hostIds(pid: number, which: 'Uid' | 'Gid'): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${which}:`))!;
  return line.split(/\s+/).slice(1).map(Number);
}

const idMap = (pid: number, which: 'uid' | 'gid') => readFileSync(`/proc/${pid}/${which}_map`, 'utf8').trim().split(/\s+/).map(Number);

async function ctr(...args: string[]): Promise<string[]> {
  const { stdout } = await execFileP('ctr', ['--address', h.containerd.address, '-n', NS, ...args], { timeout: 30_000 });
  return stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** containerd's overlayfs snapshots in the test namespace: key → parent. */
async function snapshots(): Promise<Map<string, string>> {
  const lines = (await ctr('snapshots', '--snapshotter', 'overlayfs', 'ls')).slice(1);
  return new Map(lines.map((l) => l.split(/\s+/)).map(([key, parent]) => [key!, parent === 'Active' || parent === 'Committed' ? '' : parent!]));
}

const remapName = (hostId: number, chainId: string) => `cri-adapter-remap/${hostId}-${LENGTH}-${hostId}-${LENGTH}/${chainId}`;

/** The chain ID of the test image's top layer (the parent of a container's snapshot without a user namespace). */
let chainId: string;

/**
 * containerd collects garbage in the background, some time after a
 * deletion; removing a throwaway image record with --sync runs a
 * collection now and waits for it.
 */
async function collectGarbage(): Promise<void> {
  await ctr('images', 'tag', '--force', h.images.pause, 'gc-trigger:latest');
  await ctr('images', 'rm', '--sync', 'gc-trigger:latest');
}

beforeAll(async () => {
  logDir = mkdtempSync(path.join(h.tmpDir, 'userns-logs-'));
  // The pod's processes write their logs through the shim; the directory stays root's.
  chmodSync(logDir, 0o755);
  const base = busyboxImage();
  const files = buildImage({
    layers: [
      { tar: zlib.gunzipSync(base.layers[0]!.data) },
      {
        entries: [
          { type: 'dir', path: 'usr' },
          { type: 'dir', path: 'usr/bin' },
          { type: 'file', path: 'usr/bin/suid', content: 'x', mode: 0o4755 },
          { type: 'file', path: 'usr/bin/linked', content: 'x' },
          { type: 'hardlink', path: 'usr/bin/linked-too', target: 'usr/bin/linked' },
          { type: 'dir', path: 'data', uid: 1000, gid: 2000, mode: 0o750 },
          { type: 'file', path: 'data/far', content: 'x', uid: 70000, gid: 70000 },
        ],
      },
    ],
    config: { cmd: ['sh'], env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
  });
  const pushed = await pushImage(h.registry.host, 'cri-adapter-test/userns-files', 'v1', files);
  image = pushed.reference;
  adapter = await startAdapter({
    containerdAddress: h.containerd.address,
    namespace: NS,
    cniConfDir: h.cni.confDir,
    dir: mkdtempSync(path.join(h.tmpDir, 'adapter-userns-')),
    extraArgs: harnessAdapterArgs(h),
  });
  client = adapter.client;
  imageId = (await client.image.pullImage(PullImageRequest.fromPartial({ image: { image } }))).imageRef;
  // The image's own chain ID is the GC label the pull set on its config blob.
  const info = (await ctr('content', 'ls')).find((l) => l.startsWith(imageId))!;
  chainId = /containerd\.io\/gc\.ref\.snapshot\.overlayfs=(sha256:[0-9a-f]{64})/.exec(info)![1]!;
}, 120_000);

afterAll(async () => {
  if (client) {
    for (const id of [...pods.keys()]) await removePod(id).catch(() => undefined);
    await adapter.stop();
  }
  if (logDir) rmSync(logDir, { recursive: true, force: true });
}, 60_000);

describe('Status', () => {
  test('advertises user namespaces on every runtime handler', async () => {
    const s = await client.runtime.status({ verbose: false });
    expect(s.runtimeHandlers.length).toBeGreaterThan(0);
    for (const rh of s.runtimeHandlers) expect(rh.features?.userNamespaces).toBe(true);
  });
});

describe('a pod with a user namespace', () => {
  let podId: string;
  let ctrId: string;

  beforeAll(async () => {
    podId = await runPod('mapped', HOST_ID);
    ctrId = await startContainer(podId, 'main');
  }, 120_000);

  test('runs as root inside and as unprivileged host IDs outside, pause and container alike', async () => {
    const pid = await containerPid(ctrId);
    const pause = await sandboxPid(podId);
    // The container's root is the first host ID of the range; pause runs as its image's user 65535.
    expect(hostIds(pid, 'Uid')).toEqual([HOST_ID, HOST_ID, HOST_ID, HOST_ID]);
    expect(hostIds(pid, 'Gid')).toEqual([HOST_ID, HOST_ID, HOST_ID, HOST_ID]);
    expect(hostIds(pause, 'Uid')).toEqual(Array(4).fill(HOST_ID + 65535));
    for (const p of [pid, pause]) {
      expect(idMap(p, 'uid')).toEqual([0, HOST_ID, LENGTH]);
      expect(idMap(p, 'gid')).toEqual([0, HOST_ID, LENGTH]);
    }
    // One user namespace for the pod, not the host's.
    expect(readlinkSync(`/proc/${pid}/ns/user`)).toBe(readlinkSync(`/proc/${pause}/ns/user`));
    expect(readlinkSync(`/proc/${pid}/ns/user`)).not.toBe(readlinkSync('/proc/self/ns/user'));

    const { out } = await sh(ctrId, 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map');
    expect(out.split(/\s+/).filter(Boolean).map(Number)).toEqual([0, 0, 0, HOST_ID, LENGTH, 0, HOST_ID, LENGTH]);
  });

  test('its first process logs through the CRI log path', async () => {
    const s = await client.runtime.containerStatus({ containerId: ctrId, verbose: false });
    const file = path.resolve(logDir, s.status!.logPath);
    const lines = await waitFor('the log lines', () => {
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      return text.includes(`${HOST_ID}`) ? text : undefined;
    });
    expect(lines).toMatch(/ stdout F uid=0\(root\) gid=0\(root\)/);
    expect(lines).toMatch(new RegExp(` stdout F\\s+0\\s+${HOST_ID}\\s+${LENGTH}`));
  });

  test('sees the image files with their own owners and modes, and the pod network through sysfs', async () => {
    const { out, code } = await sh(
      ctrId,
      'stat -c "%n %u:%g %a" / /bin/busybox /usr/bin/suid /usr/bin/linked /usr/bin/linked-too /data /data/far; ls /sys/class/net',
    );
    expect(code).toBe(0);
    expect(out.split('\n')).toEqual([
      '/ 0:0 755',
      '/bin/busybox 0:0 755',
      '/usr/bin/suid 0:0 4755',
      '/usr/bin/linked 0:0 644',
      '/usr/bin/linked-too 0:0 644',
      '/data 1000:2000 750',
      // Outside the pod's range (0-65535): not shifted, so the namespace shows the overflow ID.
      '/data/far 65534:65534 644',
      'eth0',
      'lo',
      '',
    ]);
    // The same files from the host: shifted into the range.
    const root = `/proc/${await containerPid(ctrId)}/root`;
    expect(statSync(`${root}/bin/busybox`).uid).toBe(HOST_ID);
    expect(statSync(`${root}/data`).gid).toBe(HOST_ID + 2000);
    expect(statSync(`${root}/data/far`).uid).toBe(70000);
  });

  test('writes its rootfs and /dev/shm, and reads the pod files', async () => {
    const r = await sh(
      ctrId,
      'echo w > /etc/written && cat /etc/written && echo s > /dev/shm/f && cat /dev/shm/f && cat /etc/hostname && grep -q localhost /etc/hosts && grep -q nameserver /etc/resolv.conf && echo read',
    );
    expect(r).toEqual({ out: 'w\ns\nmapped\nread\n', err: '', code: 0 });
    // Files the container makes belong to its host range.
    expect(statSync(`/proc/${await containerPid(ctrId)}/root/etc/written`).uid).toBe(HOST_ID);
  });

  test('is wired to the network namespace its user namespace owns, named for CNI', async () => {
    const pause = await sandboxPid(podId);
    const s = await client.runtime.podSandboxStatus({ podSandboxId: podId, verbose: false });
    expect(s.status!.network!.ip).toMatch(/^10\./);
    const named = `/run/netns/cri-adapter-${podId.slice(0, 16)}`;
    expect(`net:[${statSync(named).ino}]`).toBe(readlinkSync(`/proc/${pause}/ns/net`));
  });

  test('runs the container on a remapped copy of the image, which containerd will not remove under it', async () => {
    const snaps = await snapshots();
    const copy = remapName(HOST_ID, chainId);
    expect(snaps.get(copy)).toBe(chainId);
    expect(snaps.get(ctrId)).toBe(copy);
    await expect(ctr('snapshots', '--snapshotter', 'overlayfs', 'rm', copy)).rejects.toThrow(/child|precondition/i);
    await collectGarbage();
    expect((await snapshots()).has(copy)).toBe(true);
  });

  test('a second pod with the same mapping reuses the copy; another mapping gets its own', async () => {
    const before = [...(await snapshots()).keys()].filter((k) => k.startsWith('cri-adapter-remap/')).sort();
    const again = await runPod('mapped-again', HOST_ID);
    const c2 = await startContainer(again, 'main');
    const after = await snapshots();
    expect([...after.keys()].filter((k) => k.startsWith('cri-adapter-remap/')).sort()).toEqual(before);
    expect(after.get(c2)).toBe(remapName(HOST_ID, chainId));
    const made = adapter.logs().split('\n').filter((l) => l.includes('image snapshot remapped') && l.includes(remapName(HOST_ID, chainId)));
    expect(made).toHaveLength(1);

    const other = await runPod('mapped-other', OTHER_HOST_ID);
    const c3 = await startContainer(other, 'main');
    expect((await snapshots()).get(c3)).toBe(remapName(OTHER_HOST_ID, chainId));
    expect(hostIds(await containerPid(c3), 'Uid')[0]).toBe(OTHER_HOST_ID);
    await removePod(again);
    await removePod(other);
  }, 60_000);

  test('host-path volumes are plain binds: world-writable ones are writable, root-only ones are not', async () => {
    const open = mkdtempSync(path.join(h.tmpDir, 'userns-vol-open-'));
    chmodSync(open, 0o777); // what the kubelet makes an emptyDir
    const closed = mkdtempSync(path.join(h.tmpDir, 'userns-vol-closed-'));
    chmodSync(closed, 0o755);
    const id = await startContainer(podId, 'volumes', {
      mounts: [
        { containerPath: '/open', hostPath: open },
        { containerPath: '/closed', hostPath: closed },
      ],
    });
    const r = await sh(id, 'stat -c %u /open; echo v > /open/f && echo wrote; echo v > /closed/f || echo refused');
    // Host root is unmapped in the pod: it shows as the overflow ID and grants only "other" permissions.
    expect(r.out).toBe('65534\nwrote\nrefused\n');
    expect(statSync(path.join(open, 'f')).uid).toBe(HOST_ID);
    expect(existsSync(path.join(closed, 'f'))).toBe(false);
    await client.runtime.stopContainer({ containerId: id, timeout: 0n });
    await client.runtime.removeContainer({ containerId: id });
  });

  test('refuses idmapped volume mounts, a container with another mapping, and a privileged container', async () => {
    const sandboxConfig = pods.get(podId)!;
    const create = (config: DeepPartial<ContainerConfig>) =>
      client.runtime.createContainer(
        CreateContainerRequest.fromPartial({ podSandboxId: podId, sandboxConfig, config: { metadata: { name: 'refused' }, image: { image }, linux: {}, ...config } }),
      );
    const idmapped = await criError(create({ mounts: [{ containerPath: '/v', hostPath: h.tmpDir, uidMappings: [mapping(HOST_ID)], gidMappings: [mapping(HOST_ID)] }] }));
    expect(idmapped.code).toBe(Code.INVALID_ARGUMENT);
    expect(idmapped.details).toMatch(/mounts\[0\]\.uidMappings: idmapped mounts are not supported/);
    const other = await criError(create({ linux: { securityContext: { namespaceOptions: userns(OTHER_HOST_ID) } } }));
    expect(other.code).toBe(Code.INVALID_ARGUMENT);
    expect(other.details).toMatch(/userns_options: must be the pod's own user namespace mappings/);
    const privileged = await criError(create({ linux: { securityContext: { privileged: true } } }));
    expect(privileged.code).toBe(Code.INVALID_ARGUMENT);
    const list = await client.runtime.listContainers(ListContainersRequest.fromPartial({ filter: { podSandboxId: podId } }));
    expect(list.containers.map((c) => c.metadata?.name)).not.toContain('refused');
  });
});

describe('validation', () => {
  test.each([
    ['two UID mappings', { pid: NamespaceMode.CONTAINER, usernsOptions: { mode: NamespaceMode.POD, uids: [mapping(HOST_ID), mapping(HOST_ID * 2, 0)], gids: [mapping(HOST_ID)] } }, /userns_options\.uids: exactly one mapping is supported, got 2/],
    ['container ID 0 unmapped', { pid: NamespaceMode.CONTAINER, usernsOptions: { mode: NamespaceMode.POD, uids: [mapping(HOST_ID, 1)], gids: [mapping(HOST_ID, 1)] } }, /userns_options\.uids: the mapping must start at container ID 0/],
    ['mode CONTAINER', { usernsOptions: { mode: NamespaceMode.CONTAINER } }, /userns_options\.mode: mode CONTAINER is not supported/],
    ['mode TARGET', { usernsOptions: { mode: NamespaceMode.TARGET } }, /userns_options\.mode: mode TARGET is not supported/],
    ['the host network', { ...userns(HOST_ID), network: NamespaceMode.NODE }, /namespace_options\.network: a pod with a user namespace cannot use the host network/],
  ])('RunPodSandbox refuses %s with INVALID_ARGUMENT and leaves nothing behind', async (_what, options, message) => {
    const before = await snapshots();
    const err = await criError(client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: usernsPod('refused', options as DeepPartial<NamespaceOption>) })));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.details).toMatch(message);
    const list = await client.runtime.listPodSandbox({});
    expect(list.items.map((p) => p.metadata?.name)).not.toContain('refused');
    expect([...(await snapshots()).keys()].sort()).toEqual([...before.keys()].sort());
  });
});

describe('garbage collection', () => {
  const remapped = async () => [...(await snapshots()).keys()].filter((k) => k.startsWith('cri-adapter-remap/') && k.endsWith(chainId)).sort();

  test('a copy lives while a pod with its mapping or a container on it does, and goes with the last of them', async () => {
    const G = HOST_ID + LENGTH;
    const podId = await runPod('gc', G);
    const first = await startContainer(podId, 'first');
    await client.runtime.stopContainer({ containerId: first, timeout: 0n });
    await client.runtime.removeContainer({ containerId: first });
    // No container uses the copy now; the image keeps it for the pod's next container.
    await collectGarbage();
    expect(await remapped()).toContain(remapName(G, chainId));
    const ctrId = await startContainer(podId, 'main');
    expect(adapter.logs().split('\n').filter((l) => l.includes('image snapshot remapped') && l.includes(remapName(G, chainId)))).toHaveLength(1);

    // The other mappings' last pods go (the one of OTHER_HOST_ID went in an earlier test): their copies with them.
    for (const id of [...pods.keys()]) if (id !== podId) await removePod(id);
    await collectGarbage();
    expect(await remapped()).toEqual([remapName(G, chainId)]);

    // The image goes while a container still runs on the copy: the copy stays under it.
    await client.image.removeImage(RemoveImageRequest.fromPartial({ image: { image: imageId } }));
    await collectGarbage();
    expect(await remapped()).toEqual([remapName(G, chainId)]);
    expect((await sh(ctrId, 'stat -c %u /bin/busybox; echo more > /etc/more && cat /etc/more')).out).toBe('0\nmore\n');

    await removePod(podId);
    await collectGarbage();
    expect(await remapped()).toEqual([]);
    expect((await snapshots()).has(chainId)).toBe(false);
  }, 90_000);
});
