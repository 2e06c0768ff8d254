/**
 * Container and pod stats through the CRI API, as the kubelet's CRI stats
 * provider reads them: CPU time and rate, memory, the writable layer, the
 * pod's network counters and process count, against known loads.
 */
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import {
  ContainerStats,
  ContainerStatsFilter,
  PodSandboxStatsFilter,
  CreateContainerRequest,
  DeepPartial,
  ContainerConfig,
  ListContainerStatsRequest,
  ListPodSandboxStatsRequest,
  PodSandboxConfig,
  PodSandboxStatusRequest,
  PullImageRequest,
  RunPodSandboxRequest,
  StreamContainerStatsRequest,
  StreamPodSandboxStatsRequest,
} from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import type { AdapterProcess } from '../support/adapter-process';
import { criError } from '../support/cri-client';
import { startHarnessAdapter } from '../support/harness-adapter';
import { startContainerIn } from '../support/pod-containers';

const h = loadHarnessEnv();
const NS = 'cri-adapter-it-stats';
const MiB = 1024 * 1024;

let adapter: AdapterProcess;
let podId: string;
let podConfig: PodSandboxConfig;
let podIp: string;
/** Burns half a CPU (quota) and holds a 20 MB file in its writable layer. */
let busy: string;
/** Sleeps; memory-limited. */
let idle: string;
/** Has exited. */
let done: string;

function runContainer(name: string, command: string[], extra: DeepPartial<ContainerConfig> = {}): Promise<string> {
  return startContainerIn(adapter.client, { id: podId, config: podConfig }, h.images.busybox, name, command, { labels: { role: name }, ...extra });
}

async function listStats(filter: DeepPartial<ContainerStatsFilter> | undefined = undefined): Promise<Map<string, ContainerStats>> {
  const { stats } = await adapter.client.runtime.listContainerStats(ListContainerStatsRequest.fromPartial({ filter }));
  return new Map(stats.map((s) => [s.attributes!.id, s]));
}

async function expectCode(p: Promise<unknown>, code: number): Promise<string> {
  const err = await criError(p);
  expect(err.code).toBe(code);
  return err.details;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rmdirQuietly(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not there in this hierarchy, or still in use by another test's pod
  }
}

beforeAll(async () => {
  adapter = await startHarnessAdapter(h, { namespace: NS, dir: mkdtempSync('/tmp/cri-adapter-proc-') });
  await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
  podConfig = PodSandboxConfig.fromPartial({
    metadata: { name: 'stats', namespace: 'it', uid: 'stats-1' },
    labels: { app: 'stats' },
    linux: {},
  });
  ({ podSandboxId: podId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig })));
  const status = await adapter.client.runtime.podSandboxStatus(PodSandboxStatusRequest.fromPartial({ podSandboxId: podId }));
  podIp = status.status!.network!.ip;
  busy = await runContainer('busy', ['sh', '-c', 'head -c 20000000 /dev/zero > /blob; while :; do :; done'], {
    linux: { resources: { cpuPeriod: 100_000n, cpuQuota: 50_000n } },
  });
  idle = await runContainer('idle', ['sleep', '3600'], { linux: { resources: { memoryLimitInBytes: BigInt(64 * MiB) } } });
  done = await runContainer('done', ['true']);
  for (let i = 0; i < 100; i++) {
    const st = await adapter.client.runtime.containerStatus({ containerId: done, verbose: false });
    if (st.status?.state === 2) break;
    await sleep(50);
  }
});

afterAll(async () => {
  await adapter.client.runtime.stopPodSandbox({ podSandboxId: podId }).catch(() => undefined);
  await adapter.client.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => undefined);
  await adapter.stop();
});

describe('ListContainerStats and ContainerStats', () => {
  it('report CPU time and a CPU rate that match a half-CPU quota', async () => {
    const first = (await listStats({ id: busy })).get(busy)!;
    await sleep(2000);
    const second = (await listStats({ id: busy })).get(busy)!;
    const t1 = first.cpu!.timestamp;
    const t2 = second.cpu!.timestamp;
    expect(t1).toBeGreaterThan(0n);
    expect(t2).toBeGreaterThan(t1);
    const used = second.cpu!.usageCoreNanoSeconds!.value - first.cpu!.usageCoreNanoSeconds!.value;
    const cores = Number(used) / Number(t2 - t1);
    expect(cores).toBeGreaterThan(0.3);
    expect(cores).toBeLessThan(0.6);
    // The rate the adapter gives is the same quantity over the same interval.
    const rate = Number(second.cpu!.usageNanoCores!.value) / 1e9;
    expect(Math.abs(rate - cores)).toBeLessThan(0.05);
  });

  it('report memory with available = limit - working set, and the writable layer on the image filesystem', async () => {
    const stats = await listStats();
    const idleStats = stats.get(idle)!;
    const mem = idleStats.memory!;
    expect(mem.timestamp).toBeGreaterThan(0n);
    expect(mem.workingSetBytes!.value).toBeGreaterThan(0n);
    expect(mem.usageBytes!.value).toBeGreaterThanOrEqual(mem.workingSetBytes!.value);
    expect(mem.availableBytes!.value).toBe(BigInt(64 * MiB) - mem.workingSetBytes!.value);
    expect(mem.rssBytes!.value).toBeGreaterThan(0n);
    expect(mem.pageFaults!.value).toBeGreaterThan(0n);
    // No limit, nothing "available" to speak of.
    expect(stats.get(busy)!.memory!.availableBytes).toBeUndefined();

    const { imageFilesystems } = await adapter.client.image.imageFsInfo({});
    const layer = stats.get(busy)!.writableLayer!;
    expect(layer.fsId!.mountpoint).toBe(imageFilesystems[0]!.fsId!.mountpoint);
    expect(layer.usedBytes!.value).toBeGreaterThanOrEqual(20_000_000n);
    expect(layer.inodesUsed!.value).toBeGreaterThan(0n);
    expect(idleStats.writableLayer!.usedBytes!.value).toBeLessThan(1_000_000n);
    expect(idleStats.attributes).toEqual({
      id: idle,
      metadata: { name: 'idle', attempt: 0 },
      labels: { role: 'idle' },
      annotations: {},
    });
  });

  it('ImageFsInfo reports the containers\' writable layers as a container filesystem on the image filesystem\'s mount', async () => {
    const stats = await listStats();
    const busyLayer = stats.get(busy)!.writableLayer!.usedBytes!.value;
    const { imageFilesystems, containerFilesystems } = await adapter.client.image.imageFsInfo({});
    expect(containerFilesystems).toHaveLength(1);
    const containerFs = containerFilesystems[0]!;
    expect(containerFs.fsId!.mountpoint).toBe(imageFilesystems[0]!.fsId!.mountpoint);
    expect(containerFs.timestamp).toBeGreaterThan(0n);
    // The busy container wrote 20 MB into its layer; every layer is counted, so at least that much.
    expect(containerFs.usedBytes!.value).toBeGreaterThanOrEqual(busyLayer);
    expect(containerFs.inodesUsed!.value).toBeGreaterThan(0n);
    // The image share leaves the writable layers out: the 20 MB are not counted twice.
    const walked = BigInt(execFileSync('du', ['-s', '--block-size=1', path.join(h.containerd.root, 'io.containerd.snapshotter.v1.overlayfs')], { encoding: 'utf8' }).split('\t')[0]!);
    expect(imageFilesystems[0]!.usedBytes!.value + containerFs.usedBytes!.value).toBeLessThanOrEqual(walked + 4_000_000n);
  });

  it('list running containers only, filtered by ID prefix, pod and labels', async () => {
    expect([...(await listStats()).keys()].sort()).toEqual([busy, idle].sort());
    expect([...(await listStats({ id: idle.slice(0, 12) })).keys()]).toEqual([idle]);
    expect([...(await listStats({ labelSelector: { role: 'busy' } })).keys()]).toEqual([busy]);
    expect((await listStats({ podSandboxId: podId })).size).toBe(2);
    expect((await listStats({ podSandboxId: 'no-such-pod' })).size).toBe(0);
    expect((await listStats({ id: done })).size).toBe(0);

    const batches = await adapter.client.stream((md, o) => adapter.client.raw.runtime.streamContainerStats(StreamContainerStatsRequest.fromPartial({}), md, o));
    const streamed = batches.flatMap((m) => m.containerStats.map((x) => x.attributes!.id));
    expect(streamed.sort()).toEqual([busy, idle].sort());
  });

  it('ContainerStats answers for an exited container without CPU or memory, and refuses bad IDs', async () => {
    const { stats } = await adapter.client.runtime.containerStats({ containerId: done });
    expect(stats!.attributes!.id).toBe(done);
    expect(stats!.cpu).toBeUndefined();
    expect(stats!.memory).toBeUndefined();
    // `true` wrote nothing: its layer is measured (on the image filesystem) and holds next to nothing.
    const { imageFilesystems } = await adapter.client.image.imageFsInfo({});
    expect(stats!.writableLayer!.fsId!.mountpoint).toBe(imageFilesystems[0]!.fsId!.mountpoint);
    expect(stats!.writableLayer!.usedBytes!.value).toBeLessThan(1_000_000n);
    // A running container still gets its memory, a sleep's few pages under its 64 MiB limit.
    const idleMemory = (await adapter.client.runtime.containerStats({ containerId: idle })).stats!.memory!;
    expect(idleMemory.workingSetBytes!.value).toBeGreaterThan(0n);
    expect(idleMemory.workingSetBytes!.value).toBeLessThan(BigInt(64 * MiB));
    expect(await expectCode(adapter.client.runtime.containerStats({ containerId: '' }), 3)).toMatch(/container_id/);
    expect(await expectCode(adapter.client.runtime.containerStats({ containerId: 'nope' }), 5)).toMatch(/nope/);
  });
});

describe('ListPodSandboxStats and PodSandboxStats', () => {
  it("sum the pod's tasks, count its processes, and see traffic on the pod's eth0", async () => {
    const before = (await adapter.client.runtime.podSandboxStats({ podSandboxId: podId })).stats!;
    // Datagrams from the host to the pod: they arrive on its eth0 whether or not anything listens.
    const sock = createSocket('udp4');
    for (let i = 0; i < 20; i++) await new Promise<void>((resolve, reject) => sock.send(Buffer.alloc(1000), 9, podIp, (e) => (e ? reject(e) : resolve())));
    sock.close();
    await sleep(200);
    const after = (await adapter.client.runtime.podSandboxStats({ podSandboxId: podId })).stats!;

    expect(after.attributes).toEqual({ id: podId, metadata: podConfig.metadata, labels: { app: 'stats' }, annotations: {} });
    const linux = after.linux!;
    const net = linux.network!;
    expect(net.defaultInterface!.name).toBe('eth0');
    expect(net.interfaces.map((i) => i.name)).not.toContain('lo');
    expect(net.defaultInterface!.rxBytes!.value - before.linux!.network!.defaultInterface!.rxBytes!.value).toBeGreaterThanOrEqual(20_000n);

    // pause + the busy shell + sleep, at least.
    expect(linux.process!.processCount!.value).toBeGreaterThanOrEqual(3n);
    const containers = new Map(linux.containers.map((c) => [c.attributes!.id, c]));
    expect([...containers.keys()].sort()).toEqual([busy, idle].sort());
    const containerCpu = linux.containers.reduce((n, c) => n + c.cpu!.usageCoreNanoSeconds!.value, 0n);
    expect(linux.cpu!.usageCoreNanoSeconds!.value).toBeGreaterThanOrEqual(containerCpu);
    expect(linux.memory!.workingSetBytes!.value).toBeGreaterThan(0n);
    expect(linux.cpu!.usageNanoCores!.value).toBeGreaterThan(200_000_000n);
  });

  it('list ready pods by ID and label, stream the same, and refuse bad IDs', async () => {
    const ids = async (filter: DeepPartial<PodSandboxStatsFilter> | undefined) =>
      (await adapter.client.runtime.listPodSandboxStats(ListPodSandboxStatsRequest.fromPartial({ filter }))).stats.map((s) => s.attributes!.id);
    expect(await ids(undefined)).toEqual([podId]);
    expect(await ids({ id: podId.slice(0, 10) })).toEqual([podId]);
    expect(await ids({ labelSelector: { app: 'stats' } })).toEqual([podId]);
    expect(await ids({ labelSelector: { app: 'other' } })).toEqual([]);

    const batches = await adapter.client.stream((md, o) => adapter.client.raw.runtime.streamPodSandboxStats(StreamPodSandboxStatsRequest.fromPartial({}), md, o));
    expect(batches.flatMap((m) => m.podSandboxStats.map((x) => x.attributes!.id))).toEqual([podId]);

    expect(await expectCode(adapter.client.runtime.podSandboxStats({ podSandboxId: '' }), 3)).toMatch(/pod_sandbox_id/);
    expect(await expectCode(adapter.client.runtime.podSandboxStats({ podSandboxId: 'nope' }), 5)).toMatch(/nope/);
  });

  it("read the pod's own cgroup when the kubelet gave it one, so an exited container's CPU time still counts", async () => {
    const parent = `/cri-adapter-it/pod-stats-${process.pid}`;
    const config = PodSandboxConfig.fromPartial({ metadata: { name: 'cg', namespace: 'it', uid: 'stats-cg' }, linux: { cgroupParent: parent } });
    const { podSandboxId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
    try {
      const start = async (name: string, command: string[]) => {
        const { containerId } = await adapter.client.runtime.createContainer(
          CreateContainerRequest.fromPartial({ podSandboxId, sandboxConfig: config, config: { metadata: { name }, image: { image: h.images.busybox }, command, linux: {} } }),
        );
        await adapter.client.runtime.startContainer({ containerId });
        return containerId;
      };
      await start('stay', ['sleep', '3600']);
      const burst = await start('burst', ['sh', '-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done']);
      for (let i = 0; i < 300; i++) {
        if ((await adapter.client.runtime.containerStatus({ containerId: burst, verbose: false })).status?.state === 2) break;
        await sleep(100);
      }
      const { stats } = await adapter.client.runtime.podSandboxStats({ podSandboxId });
      const running = stats!.linux!.containers.reduce((n, c) => n + c.cpu!.usageCoreNanoSeconds!.value, 0n);
      // The burst ran for a good part of a CPU-second and is gone; the pod cgroup still has it.
      expect(stats!.linux!.cpu!.usageCoreNanoSeconds!.value - running).toBeGreaterThan(100_000_000n);
      expect(stats!.linux!.containers.map((c) => c.attributes!.metadata!.name)).toEqual(['stay']);
      expect(stats!.linux!.process!.processCount!.value).toBeGreaterThanOrEqual(2n);
    } finally {
      await adapter.client.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
      await adapter.client.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
      // The kubelet owns pod cgroups and removes them; here the test does.
      for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
        for (const dir of [parent, path.dirname(parent)]) rmdirQuietly(path.join('/sys/fs/cgroup', hierarchy, dir));
      }
    }
  });

  it('leave a stopped pod out of the list but still answer for it, without usage', async () => {
    const config = PodSandboxConfig.fromPartial({ metadata: { name: 'stopped', namespace: 'it', uid: 'stats-2' }, linux: {} });
    const { podSandboxId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
    await adapter.client.runtime.stopPodSandbox({ podSandboxId });
    try {
      const listed = await adapter.client.runtime.listPodSandboxStats(ListPodSandboxStatsRequest.fromPartial({}));
      expect(listed.stats.map((s) => s.attributes!.id)).toEqual([podId]);
      const { stats } = await adapter.client.runtime.podSandboxStats({ podSandboxId });
      expect(stats!.attributes!.id).toBe(podSandboxId);
      expect(stats!.linux!.cpu).toBeUndefined();
      expect(stats!.linux!.network).toBeUndefined();
      expect(stats!.linux!.containers).toEqual([]);
    } finally {
      await adapter.client.runtime.removePodSandbox({ podSandboxId });
    }
  });
});
