/**
 * Runtime features newer kubelets ask for, through the CRI socket of the
 * built daemon on the harness's real containerd and runc: what Status
 * advertises, and each feature seen from inside the container (exec) and
 * from the host (/proc, mounts).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  ContainerConfig,
  CreateContainerRequest,
  DeepPartial,
  ImageSpec,
  MountPropagation,
  PodSandboxConfig,
  PullImageRequest,
  RunPodSandboxRequest,
  SupplementalGroupsPolicy,
} from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import { buildImage, pushImage } from '../harness/images';
import type { AdapterProcess } from '../support/adapter-process';
import { criError } from '../support/cri-client';
import { startAdapter } from '../support/adapter-process';

const h = loadHarnessEnv();
const NS = 'cri-adapter-it-features';

let adapter: AdapterProcess;
let work: string;
/** The adapter's directory (root, state, socket), kept for the restart test. */
let adapterDir: string;
let runtimesArg: string;
/** CDI spec directories the adapter reads (the second wins on equal names). */
let cdiDirs: string[];
const pods = new Map<string, PodSandboxConfig>();
let pod: string;

async function runPod(name: string, runtimeHandler = ''): Promise<string> {
  const config = PodSandboxConfig.fromPartial({ metadata: { name, namespace: 'features', uid: `${name}-uid` }, linux: {} });
  const { podSandboxId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config, runtimeHandler }));
  pods.set(podSandboxId, config);
  return podSandboxId;
}

function createContainer(podId: string, config: DeepPartial<ContainerConfig>): Promise<{ containerId: string }> {
  return adapter.client.runtime.createContainer(
    CreateContainerRequest.fromPartial({
      podSandboxId: podId,
      sandboxConfig: pods.get(podId),
      config: { image: { image: h.images.busybox }, command: ['sleep', '3600'], linux: {}, ...config },
    }),
  );
}

async function runContainer(podId: string, config: DeepPartial<ContainerConfig>): Promise<string> {
  const { containerId } = await createContainer(podId, config);
  await adapter.client.runtime.startContainer({ containerId });
  return containerId;
}

async function sh(containerId: string, script: string): Promise<{ out: string; err: string; code: number }> {
  const r = await adapter.client.runtime.execSync({ containerId, cmd: ['sh', '-c', script], timeout: 10n });
  return { out: r.stdout.toString(), err: r.stderr.toString(), code: r.exitCode };
}

async function pidOf(containerId: string): Promise<number> {
  const st = await adapter.client.runtime.containerStatus({ containerId, verbose: true });
  return (JSON.parse(st.info.info!) as { pid: number }).pid;
}

async function removeContainer(containerId: string): Promise<void> {
  await adapter.client.runtime.stopContainer({ containerId, timeout: 0n }).catch(() => undefined);
  await adapter.client.runtime.removeContainer({ containerId });
}

/** The harness settings (registry, pause image, CNI) with two runtime handlers of our own. */
function launch(): Promise<AdapterProcess> {
  return startAdapter({
    containerdAddress: h.containerd.address,
    cniConfDir: h.cni.confDir,
    namespace: NS,
    dir: adapterDir,
    extraArgs: ['--registry-config-path', h.registry.configPath, '--sandbox-image', h.images.pause, '--runtimes', runtimesArg, '--cdi-spec-dirs', cdiDirs.join(',')],
  });
}

beforeAll(async () => {
  work = mkdtempSync('/tmp/cri-adapter-features-');
  adapterDir = path.join(work, 'adapter');
  mkdirSync(adapterDir);
  cdiDirs = [path.join(work, 'cdi-etc'), path.join(work, 'cdi-run')];
  for (const d of cdiDirs) mkdirSync(d);
  // A handler whose runc does not list rro: every call goes to the real runc, but its
  // features document lacks the option, as an older runc's would.
  const oldRunc = path.join(work, 'runc-without-rro');
  writeFileSync(oldRunc, '#!/bin/sh\nif [ "$1" = features ]; then runc features | grep -v \'"rro"\'; exit 0; fi\nexec runc "$@"\n');
  chmodSync(oldRunc, 0o755);
  runtimesArg = JSON.stringify({
    runc: { type: 'io.containerd.runc.v2', root: path.join(h.tmpDir, 'runc-adapter') },
    oldrunc: { type: 'io.containerd.runc.v2', root: path.join(h.tmpDir, 'runc-adapter-old'), binaryName: oldRunc },
  });
  adapter = await launch();
  await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
  pod = await runPod('main');
});

afterAll(async () => {
  for (const id of pods.keys()) {
    await adapter.client.runtime.stopPodSandbox({ podSandboxId: id }).catch(() => undefined);
    await adapter.client.runtime.removePodSandbox({ podSandboxId: id }).catch(() => undefined);
  }
  await adapter.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('Status', () => {
  it('advertises recursive read-only mounts per handler from its runc, and the supplemental groups policy', async () => {
    const st = await adapter.client.runtime.status({ verbose: true });
    const byName = new Map(st.runtimeHandlers.map((r) => [r.name, r.features]));
    expect(byName.get('')?.recursiveReadOnlyMounts).toBe(true);
    expect(byName.get('runc')?.recursiveReadOnlyMounts).toBe(true);
    expect(byName.get('oldrunc')?.recursiveReadOnlyMounts).toBe(false);
    // User namespaces work on this kernel (test/integration/userns.test.ts), so they are advertised on every handler.
    expect(byName.get('runc')?.userNamespaces).toBe(true);
    expect(st.features?.supplementalGroupsPolicy).toBe(true);
    expect(JSON.parse(st.info.runtimeFeatures!).oldrunc.notes.join()).toMatch(/rro/);
  });
});

describe('recursive read-only mounts', () => {
  let hostDir: string;
  beforeAll(() => {
    hostDir = path.join(work, 'rro-src');
    mkdirSync(path.join(hostDir, 'sub'), { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'rro-test', path.join(hostDir, 'sub')]);
  });
  afterAll(() => {
    execFileSync('umount', ['-l', path.join(hostDir, 'sub')]);
  });

  it('make a submount of the host dir read-only too, where plain readonly leaves it writable', async () => {
    const rro = await runContainer(pod, {
      metadata: { name: 'rro' },
      mounts: [{ containerPath: '/data', hostPath: hostDir, readonly: true, recursiveReadOnly: true }],
    });
    const ro = await runContainer(pod, {
      metadata: { name: 'ro' },
      mounts: [{ containerPath: '/data', hostPath: hostDir, readonly: true }],
    });
    // The submount is there in both (rbind) ...
    expect((await sh(rro, 'grep " /data/sub " /proc/self/mountinfo')).out).toMatch(/ \/data\/sub ro[, ]/);
    expect((await sh(ro, 'grep " /data/sub " /proc/self/mountinfo')).out).toMatch(/ \/data\/sub rw[, ]/);
    const topRo = await sh(ro, 'touch /data/top');
    expect(topRo.code).not.toBe(0);
    expect(topRo.err).toMatch(/Read-only file system/);
    // ... but only rro makes it read-only.
    const inRro = await sh(rro, 'echo x > /data/sub/file');
    expect(inRro.code).not.toBe(0);
    expect(inRro.err).toMatch(/Read-only file system/);
    const inRo = await sh(ro, 'echo from-ro > /data/sub/file && cat /data/sub/file');
    expect(inRo).toMatchObject({ code: 0, out: 'from-ro\n' });
    // The host sees what the plain-readonly container wrote, and nothing from the other.
    expect(readFileSync(path.join(hostDir, 'sub', 'file'), 'utf8')).toBe('from-ro\n');
    await removeContainer(rro);
    await removeContainer(ro);
  });

  it('refuse what the spec forbids, and a handler whose runc lacks rro, with INVALID_ARGUMENT', async () => {
    const notRo = await criError(
      createContainer(pod, { metadata: { name: 'rro-rw' }, mounts: [{ containerPath: '/data', hostPath: hostDir, recursiveReadOnly: true }] }),
    );
    expect(notRo.code).toBe(3);
    expect(notRo.details).toMatch(/recursive_read_only.*readonly/);
    const shared = await criError(
      createContainer(pod, {
        metadata: { name: 'rro-slave' },
        mounts: [
          {
            containerPath: '/data',
            hostPath: hostDir,
            readonly: true,
            recursiveReadOnly: true,
            propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER,
          },
        ],
      }),
    );
    expect(shared.code).toBe(3);
    expect(shared.details).toMatch(/PROPAGATION_PRIVATE/);
    const oldPod = await runPod('oldrunc', 'oldrunc');
    const old = await criError(
      createContainer(oldPod, {
        metadata: { name: 'rro-old' },
        mounts: [{ containerPath: '/data', hostPath: hostDir, readonly: true, recursiveReadOnly: true }],
      }),
    );
    expect(old.code).toBe(3);
    expect(old.details).toMatch(/does not support recursive read-only/);
    // The same handler runs plain read-only mounts.
    const plain = await runContainer(oldPod, { metadata: { name: 'ro-old' }, mounts: [{ containerPath: '/data', hostPath: hostDir, readonly: true }] });
    expect((await sh(plain, 'ls /data')).out).toMatch(/sub/);
    await removeContainer(plain);
  });
});

describe('supplemental groups policy', () => {
  // The image's /etc/group lists user "app" (uid 1000) in group "extra" (2000).
  const groupsOf = (status: string) =>
    /^Groups:\s*(.*)$/m
      .exec(status)![1]!
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .sort((a, b) => a - b);

  it('Merge adds the image groups of the user; Strict uses only the request; ContainerStatus.user says what the process has', async () => {
    const sc = { runAsUser: { value: 1000n }, supplementalGroups: [3000n] };
    const merge = await runContainer(pod, {
      metadata: { name: 'groups-merge' },
      linux: { securityContext: { ...sc, supplementalGroupsPolicy: SupplementalGroupsPolicy.Merge } },
    });
    const strict = await runContainer(pod, {
      metadata: { name: 'groups-strict' },
      linux: { securityContext: { ...sc, supplementalGroupsPolicy: SupplementalGroupsPolicy.Strict } },
    });
    const strictGroup = await runContainer(pod, {
      metadata: { name: 'groups-strict-gid' },
      linux: { securityContext: { ...sc, runAsGroup: { value: 4000n }, supplementalGroupsPolicy: SupplementalGroupsPolicy.Strict } },
    });
    const cases: [string, number[], number][] = [
      [merge, [1000, 2000, 3000], 1000],
      [strict, [1000, 3000], 1000],
      [strictGroup, [3000, 4000], 4000],
    ];
    for (const [id, groups, gid] of cases) {
      // Inside: what the process is.
      const inside = await sh(id, 'id -u; id -g; id -G');
      const [uid, g, all] = inside.out.trim().split('\n');
      expect({ uid: Number(uid), gid: Number(g) }).toEqual({ uid: 1000, gid });
      expect(all!.split(' ').map(Number).sort((a, b) => a - b)).toEqual(groups);
      // From the host: the kernel's record of the container's first process.
      const status = readFileSync(`/proc/${await pidOf(id)}/status`, 'utf8');
      expect(groupsOf(status)).toEqual(groups);
      expect(/^Gid:\s*(\d+)/m.exec(status)![1]).toBe(String(gid));
      // And the CRI says the same.
      const st = await adapter.client.runtime.containerStatus({ containerId: id, verbose: false });
      expect(st.status!.user!.linux).toEqual({ uid: 1000n, gid: BigInt(gid), supplementalGroups: groups.map(BigInt) });
      await removeContainer(id);
    }
  });
});

describe('CDI devices', () => {
  let vendorDir: string;
  let hookOut: string;
  beforeAll(() => {
    vendorDir = path.join(work, 'vendor-lib');
    mkdirSync(vendorDir);
    writeFileSync(path.join(vendorDir, 'hello'), 'from the vendor\n');
    hookOut = path.join(work, 'hook-ran');
    // Written after the adapter started: it must notice new spec files by itself.
    writeFileSync(
      path.join(cdiDirs[0]!, 'example.json'),
      JSON.stringify({
        cdiVersion: '0.6.0',
        kind: 'example.test/dev',
        containerEdits: { env: ['VENDOR=example'] },
        devices: [
          {
            name: 'null0',
            containerEdits: {
              env: ['FAKE_DEVICE=null0'],
              deviceNodes: [{ path: '/dev/fake0', hostPath: '/dev/null', permissions: 'rw' }],
              mounts: [{ hostPath: vendorDir, containerPath: '/opt/vendor', options: ['ro', 'rbind'] }],
              hooks: [{ hookName: 'createRuntime', path: '/bin/sh', args: ['sh', '-c', `cat > ${hookOut}`] }],
            },
          },
          { name: 'shadowed', containerEdits: { env: ['SHADOW=etc'] } },
        ],
      }),
    );
    writeFileSync(
      path.join(cdiDirs[1]!, 'second.yaml'),
      [
        'cdiVersion: 0.6.0',
        'kind: example.test/yaml',
        'devices:',
        '  - name: one',
        '    containerEdits:',
        '      env: ["YAML_DEVICE=one"]',
        '      deviceNodes:',
        '        - path: /dev/fake-zero',
        '          hostPath: /dev/zero',
        '',
      ].join('\n'),
    );
    // The same name in the later directory overrides the earlier one.
    writeFileSync(
      path.join(cdiDirs[1]!, 'override.json'),
      JSON.stringify({ cdiVersion: '0.6.0', kind: 'example.test/dev', devices: [{ name: 'shadowed', containerEdits: { env: ['SHADOW=run'] } }] }),
    );
  });

  it('apply device nodes, env, mounts and hooks of devices named in CDI_devices and cdi.k8s.io annotations', async () => {
    const id = await runContainer(pod, {
      metadata: { name: 'cdi' },
      CDIDevices: [{ name: 'example.test/dev=null0' }, { name: 'example.test/dev=shadowed' }],
      annotations: { 'cdi.k8s.io/test-plugin': 'example.test/yaml=one' },
    });
    const env = (await sh(id, 'env')).out.split('\n');
    expect(env).toEqual(expect.arrayContaining(['VENDOR=example', 'FAKE_DEVICE=null0', 'YAML_DEVICE=one', 'SHADOW=run']));
    // /dev/null under another name: same node numbers, and the device cgroup lets it be written.
    expect((await sh(id, 'stat -c "%t %T %F" /dev/fake0 /dev/fake-zero')).out).toBe('1 3 character special file\n1 5 character special file\n');
    expect(await sh(id, 'echo data > /dev/fake0 && head -c 4 /dev/fake-zero | wc -c')).toMatchObject({ code: 0, out: '4\n' });
    expect((await sh(id, 'cat /opt/vendor/hello; touch /opt/vendor/x')).out).toBe('from the vendor\n');
    // The hook ran on the host with the container's state on stdin.
    expect(JSON.parse(readFileSync(hookOut, 'utf8')).id).toBe(id);
    const spec = JSON.parse((await adapter.client.runtime.containerStatus({ containerId: id, verbose: true })).info.info!).runtimeSpec;
    expect(spec.hooks.createRuntime).toEqual([{ path: '/bin/sh', args: ['sh', '-c', `cat > ${hookOut}`] }]);
    await removeContainer(id);
  });

  it('refuse an unknown device or a name that is not fully qualified, naming it', async () => {
    const unknown = await criError(createContainer(pod, { metadata: { name: 'cdi-unknown' }, CDIDevices: [{ name: 'example.test/dev=missing' }] }));
    expect(unknown.code).toBe(3);
    expect(unknown.details).toMatch(/"example.test\/dev=missing" is not defined/);
    const unqualified = await criError(
      createContainer(pod, { metadata: { name: 'cdi-bad' }, annotations: { 'cdi.k8s.io/x': 'gpu0' } }),
    );
    expect(unqualified.code).toBe(3);
    expect(unqualified.details).toMatch(/"gpu0" is not a fully-qualified CDI device name/);
    const long = await criError(createContainer(pod, { metadata: { name: 'cdi-long' }, CDIDevices: [{ name: `example.test/dev=${'x'.repeat(5000)}` }] }));
    expect(long.code).toBe(3);
    expect(long.details.length).toBeLessThan(400);
    // The names are free again after a refusal.
    const ok = await runContainer(pod, { metadata: { name: 'cdi-unknown' }, CDIDevices: [{ name: 'example.test/yaml=one' }] });
    await removeContainer(ok);
  });
});

describe('image volumes', () => {
  let dataImage: string;
  const mountsRoot = () => path.join(adapterDir, 'state', 'image-mounts');
  const mountpoints = () =>
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(mountsRoot() + '/'));
  const ctr = (...args: string[]) => execFileSync('ctr', ['-a', h.containerd.address, '-n', NS, ...args], { encoding: 'utf8' });
  const views = () =>
    ctr('snapshots', 'ls')
      .split('\n')
      .filter((l) => l.startsWith('image-mount-'));
  /** Runs containerd's garbage collector now: deleting a lease with --sync collects everything unreferenced. */
  const collectGarbage = () => {
    const lease = `gc-${Date.now()}`;
    ctr('leases', 'create', '--id', lease);
    ctr('leases', 'delete', '--sync', lease);
  };
  const image = (ref: string) => ImageSpec.fromPartial({ image: ref });

  beforeAll(async () => {
    // Two layers, so containerd's view is an overlay of both; the second adds a file and an absolute symlink.
    const img = buildImage({
      layers: [
        {
          entries: [
            { type: 'dir', path: 'data' },
            { type: 'file', path: 'data/hello.txt', content: 'hello from the image\n' },
            { type: 'file', path: 'data/run.sh', content: '#!/bin/sh\necho ran\n', mode: 0o755 },
            { type: 'dir', path: 'data/sub' },
            { type: 'file', path: 'data/sub/inner.txt', content: 'inner\n' },
          ],
        },
        {
          entries: [
            { type: 'dir', path: 'data' },
            { type: 'dir', path: 'data/sub' },
            { type: 'file', path: 'data/sub/second.txt', content: 'second layer\n' },
            { type: 'symlink', path: 'data/link', target: '/data/sub' },
          ],
        },
      ],
      config: {},
    });
    dataImage = (await pushImage(h.registry.host, 'cri-adapter-test/image-volume', 'v1', img)).reference;
  });

  it('refuse an image that is not pulled, with NOT_FOUND naming the mount', async () => {
    const err = await criError(
      createContainer(pod, { metadata: { name: 'iv-unpulled' }, mounts: [{ containerPath: '/vol', image: { image: dataImage } }] }),
    );
    expect(err.code).toBe(5);
    expect(err.details).toMatch(/mounts\[0\]\.image: image ".*image-volume:v1" is not on this node; pull it first/);
    expect(views()).toEqual([]);
  });

  it("mount the image's files read-only and noexec, whole or by sub_path, keep the image while mounted, and survive a restart", async () => {
    await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: dataImage } }));
    const id = await runContainer(pod, {
      metadata: { name: 'iv' },
      mounts: [
        { containerPath: '/vol', image: { image: dataImage } },
        { containerPath: '/sub', image: { image: dataImage }, imageSubPath: 'data/link' },
        { containerPath: '/bb', image: { image: h.images.busybox }, imageSubPath: 'etc' },
      ],
    });
    // Inside: both layers' files, nothing writable, nothing executable.
    expect((await sh(id, 'cat /vol/data/hello.txt /vol/data/sub/second.txt')).out).toBe('hello from the image\nsecond layer\n');
    const write = await sh(id, 'touch /vol/data/new');
    expect(write.code).not.toBe(0);
    expect(write.err).toMatch(/Read-only file system/);
    const exec = await sh(id, '/vol/data/run.sh');
    expect(exec.code).not.toBe(0);
    expect(exec.err).toMatch(/Permission denied/);
    // sub_path through an absolute symlink resolves inside the image (its /data/sub), not on the host.
    expect((await sh(id, 'ls /sub')).out.split('\n').filter(Boolean).sort()).toEqual(['inner.txt', 'second.txt']);
    expect((await sh(id, 'cat /bb/group')).out).toMatch(/^extra:x:2000:app$/m);
    expect((await sh(id, 'grep -E " /(vol|sub|bb) " /proc/self/mountinfo | grep -c " ro,nosuid,nodev,noexec"')).out.trim()).toBe('3');
    // From the host: one view per mount in containerd, each mounted under the adapter's state dir.
    expect(views()).toHaveLength(3);
    expect(mountpoints()).toHaveLength(3);

    // The image stays while a container mounts it, also once the container has stopped.
    await adapter.client.runtime.stopContainer({ containerId: id, timeout: 0n });
    const busy = await criError(adapter.client.image.removeImage({ image: image(dataImage) }));
    expect(busy.code).toBe(9);
    expect(busy.details).toContain(`container ${id} mounts it (Mount.image); remove the container first`);

    // A restart finds the views again (the container's extension and GC labels); host mounts no
    // container owns (left by a crash inside RemoveContainer) are taken down.
    const orphan = path.join(mountsRoot(), 'f'.repeat(64), '0');
    mkdirSync(orphan, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'orphan-view', orphan]);
    await adapter.stop();
    adapter = await launch();
    expect(mountpoints()).toHaveLength(3);
    expect(existsSync(path.dirname(orphan))).toBe(false);
    expect((await criError(adapter.client.image.removeImage({ image: image(dataImage) }))).code).toBe(9);
    // containerd's GC leaves the views alone: CreateContainer's lease is gone, the container's labels hold them.
    collectGarbage();
    expect(views()).toHaveLength(3);

    await adapter.client.runtime.removeContainer({ containerId: id });
    expect(mountpoints()).toEqual([]);
    expect(views()).toEqual([]);
    expect(existsSync(path.join(mountsRoot(), id))).toBe(false);
    await adapter.client.image.removeImage({ image: image(dataImage) });
    const st = await adapter.client.image.imageStatus({ image: image(dataImage), verbose: false });
    expect(st.image).toBeUndefined();
  });

  it('fail clearly when image_sub_path is not in the image, leaving nothing behind', async () => {
    await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: dataImage } }));
    const missing = await criError(
      createContainer(pod, {
        metadata: { name: 'iv-missing' },
        mounts: [{ containerPath: '/vol', image: { image: dataImage }, imageSubPath: 'data/nope' }],
      }),
    );
    expect(missing.code).toBe(5);
    expect(missing.details).toMatch(/mounts\[0\]\.image_sub_path: "data\/nope" does not exist in image/);
    // ".." stops at the image's root: this is the image's /etc, which this image lacks (the host has one).
    const escape = await criError(
      createContainer(pod, {
        metadata: { name: 'iv-missing' },
        mounts: [{ containerPath: '/vol', image: { image: dataImage }, imageSubPath: '../../../../etc' }],
      }),
    );
    expect(escape.code).toBe(5);
    const absolute = await criError(
      createContainer(pod, {
        metadata: { name: 'iv-missing' },
        mounts: [{ containerPath: '/vol', image: { image: dataImage }, imageSubPath: '/data' }],
      }),
    );
    expect(absolute.code).toBe(3);
    expect(mountpoints()).toEqual([]);
    expect(views()).toEqual([]);
    // The name is free again, and the image was never held.
    const ok = await runContainer(pod, { metadata: { name: 'iv-missing' }, mounts: [{ containerPath: '/vol', image: { image: dataImage }, imageSubPath: 'data' }] });
    expect((await sh(ok, 'cat /vol/hello.txt')).out).toBe('hello from the image\n');
    await removeContainer(ok);
    await adapter.client.image.removeImage({ image: image(dataImage) });
  });
});
