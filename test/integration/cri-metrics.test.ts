/**
 * ListMetricDescriptors and ListPodSandboxMetrics (and the Stream variant)
 * through the CRI socket, as the kubelet's /metrics/cadvisor reads them with
 * PodAndContainerStatsFromCRI: known loads inside the containers, figures
 * checked against what the host sees of the same processes and cgroups.
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import {
  ContainerConfig,
  DeepPartial,
  Metric,
  MetricDescriptor,
  PodSandboxConfig,
  PodSandboxMetrics,
  PodSandboxStatusRequest,
  PullImageRequest,
  RunPodSandboxRequest,
} from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import type { AdapterProcess } from '../support/adapter-process';
import { startHarnessAdapter } from '../support/harness-adapter';
import { startContainerIn } from '../support/pod-containers';

const h = loadHarnessEnv();
const NS = 'cri-adapter-it-cri-metrics';
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let adapter: AdapterProcess;
let podId: string;
let podConfig: PodSandboxConfig;
let podIp: string;
/** Half a CPU of quota, spinning; a 20 MB file in its writable layer. */
let busy: string;
/** Three processes (a shell and two sleeps), 64 MiB memory limit. */
let sleepers: string;
let descriptors: MetricDescriptor[];

function runContainer(name: string, command: string[], extra: DeepPartial<ContainerConfig> = {}): Promise<string> {
  return startContainerIn(adapter.client, { id: podId, config: podConfig }, h.images.busybox, name, command, extra);
}

async function podMetrics(): Promise<PodSandboxMetrics> {
  const { podMetrics: all } = await adapter.client.runtime.listPodSandboxMetrics({});
  const pod = all.find((p) => p.podSandboxId === podId);
  expect(pod).toBeDefined();
  return pod!;
}

function containerMetrics(pod: PodSandboxMetrics, id: string): Metric[] {
  const c = pod.containerMetrics.find((m) => m.containerId === id);
  expect(c).toBeDefined();
  return c!.metrics;
}

/** The value of the one metric of that name (and label values, when given); fails when absent. */
function value(metrics: Metric[], name: string, where: Record<string, string> = {}): number {
  const desc = descriptors.find((d) => d.name === name)!;
  const found = metrics.filter(
    (m) => m.name === name && Object.entries(where).every(([k, v]) => m.labelValues[desc.labelKeys.indexOf(k)] === v),
  );
  expect(found.map((m) => m.name)).toEqual([name]);
  return Number(found[0]!.value!.value);
}

/** The v1 cgroup directory of a process for one controller, as the host sees it. */
function hostCgroup(pid: number, controller: string): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes(controller))!;
  const cgroupPath = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
  return `/sys/fs/cgroup/${controller}${cgroupPath}`;
}

function hostPids(containerPid: number): number[] {
  return readFileSync(`${hostCgroup(containerPid, 'pids')}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
}

function hostCpuStat(containerPid: number): Map<string, number> {
  const text = readFileSync(`${hostCgroup(containerPid, 'cpu')}/cpu.stat`, 'utf8');
  return new Map(text.split('\n').filter(Boolean).map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])]));
}

async function containerPid(id: string): Promise<number> {
  const st = await adapter.client.runtime.containerStatus({ containerId: id, verbose: true });
  return JSON.parse(st.info['info'] ?? '{}').pid as number;
}

beforeAll(async () => {
  adapter = await startHarnessAdapter(h, { namespace: NS, dir: mkdtempSync('/tmp/cri-adapter-proc-') });
  await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
  podConfig = PodSandboxConfig.fromPartial({ metadata: { name: 'metrics', namespace: 'it', uid: 'metrics-1' }, linux: {} });
  ({ podSandboxId: podId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig })));
  const status = await adapter.client.runtime.podSandboxStatus(PodSandboxStatusRequest.fromPartial({ podSandboxId: podId }));
  podIp = status.status!.network!.ip;
  busy = await runContainer('busy', ['sh', '-c', 'head -c 20000000 /dev/zero > /blob; while :; do :; done'], {
    linux: { resources: { cpuPeriod: 100_000n, cpuQuota: 50_000n, cpuShares: 512n } },
  });
  sleepers = await runContainer('sleepers', ['sh', '-c', 'sleep 3600 & sleep 3600 & wait'], {
    linux: { resources: { memoryLimitInBytes: BigInt(64 * MiB) } },
  });
  ({ descriptors } = await adapter.client.runtime.listMetricDescriptors({}));
  // Let the spinning container use up some quota periods and write its file.
  await sleep(1500);
});

afterAll(async () => {
  await adapter.client.runtime.stopPodSandbox({ podSandboxId: podId }).catch(() => undefined);
  await adapter.client.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => undefined);
  await adapter.stop();
});

describe('ListMetricDescriptors', () => {
  it('describes the cAdvisor families with their label keys', () => {
    const byName = new Map(descriptors.map((d) => [d.name, d]));
    for (const name of [
      'container_cpu_usage_seconds_total',
      'container_cpu_user_seconds_total',
      'container_cpu_system_seconds_total',
      'container_cpu_cfs_periods_total',
      'container_cpu_cfs_throttled_periods_total',
      'container_memory_usage_bytes',
      'container_memory_working_set_bytes',
      'container_memory_rss',
      'container_memory_cache',
      'container_memory_swap',
      'container_memory_mapped_file',
      'container_memory_failcnt',
      'container_oom_events_total',
      'container_network_receive_bytes_total',
      'container_network_transmit_packets_dropped_total',
      'container_fs_usage_bytes',
      'container_fs_limit_bytes',
      'container_fs_inodes_total',
      'container_processes',
      'container_threads',
      'container_file_descriptors',
      'container_spec_cpu_quota',
      'container_spec_memory_limit_bytes',
      'container_start_time_seconds',
      'container_last_seen',
    ]) {
      expect(byName.get(name)?.help).toMatch(/\w/);
    }
    const base = ['id', 'name', 'image', 'pod', 'namespace', 'container'];
    expect(byName.get('container_memory_usage_bytes')!.labelKeys).toEqual(base);
    expect(byName.get('container_network_receive_bytes_total')!.labelKeys).toEqual([...base, 'interface']);
    expect(byName.get('container_fs_usage_bytes')!.labelKeys).toEqual([...base, 'device']);
  });
});

describe('ListPodSandboxMetrics', () => {
  it('reports only described names, each with as many label values as its descriptor has keys', async () => {
    const pod = await podMetrics();
    const all = [...pod.metrics, ...pod.containerMetrics.flatMap((c) => c.metrics)];
    expect(all.length).toBeGreaterThan(40);
    for (const m of all) {
      const d = descriptors.find((x) => x.name === m.name);
      expect(d?.name).toBe(m.name);
      expect(m.labelValues).toHaveLength(d!.labelKeys.length);
    }
    expect(pod.containerMetrics.map((c) => c.containerId).sort()).toEqual([busy, sleepers].sort());
  });

  it('labels container figures with the container, pod, namespace and image', async () => {
    const m = containerMetrics(await podMetrics(), sleepers);
    const usage = m.find((x) => x.name === 'container_memory_usage_bytes')!;
    const [id, name, image, pod, namespace, container] = usage.labelValues;
    expect(id).toBe(sleepers);
    expect(name).toContain('sleepers');
    expect(image).toBe(h.images.busybox);
    expect([pod, namespace, container]).toEqual(['metrics', 'it', 'sleepers']);
  });

  it('counts the processes, threads and descriptors the host sees in the container cgroup', async () => {
    const pids = hostPids(await containerPid(sleepers));
    expect(pids).toHaveLength(3);
    const m = containerMetrics(await podMetrics(), sleepers);
    expect(value(m, 'container_processes')).toBe(3);
    expect(value(m, 'container_threads')).toBe(pids.reduce((n, p) => n + readdirSync(`/proc/${p}/task`).length, 0));
    expect(value(m, 'container_file_descriptors')).toBe(pids.reduce((n, p) => n + readdirSync(`/proc/${p}/fd`).length, 0));
  });

  it('reports CPU time and the CFS period and throttling counters the host reads in the container cgroup', async () => {
    const pid = await containerPid(busy);
    const first = containerMetrics(await podMetrics(), busy);
    await sleep(2200);
    const hostBefore = hostCpuStat(pid);
    const second = containerMetrics(await podMetrics(), busy);
    const hostAfter = hostCpuStat(pid);
    const grew = value(second, 'container_cpu_usage_seconds_total') - value(first, 'container_cpu_usage_seconds_total');
    // 2.2 s at half a CPU at most is about 1.1 s; whole seconds on the wire.
    expect(grew).toBeGreaterThanOrEqual(0);
    expect(grew).toBeLessThanOrEqual(2);
    // The counters are the cgroup's own: between what the host read just before and just after the call.
    const periods = value(second, 'container_cpu_cfs_periods_total');
    expect(periods).toBeGreaterThan(value(first, 'container_cpu_cfs_periods_total') + 10);
    expect(periods).toBeGreaterThanOrEqual(hostBefore.get('nr_periods')!);
    expect(periods).toBeLessThanOrEqual(hostAfter.get('nr_periods')!);
    const throttled = value(second, 'container_cpu_cfs_throttled_periods_total');
    expect(throttled).toBeGreaterThanOrEqual(hostBefore.get('nr_throttled')!);
    expect(throttled).toBeLessThanOrEqual(hostAfter.get('nr_throttled')!);
    expect(value(second, 'container_spec_cpu_quota')).toBe(50_000);
    expect(value(second, 'container_spec_cpu_period')).toBe(100_000);
    expect(value(second, 'container_spec_cpu_shares')).toBe(512);
  });

  it('reports memory against the limit, the writable layer and the start time', async () => {
    const pod = await podMetrics();
    const s = containerMetrics(pod, sleepers);
    expect(value(s, 'container_spec_memory_limit_bytes')).toBe(64 * MiB);
    const usage = value(s, 'container_memory_usage_bytes');
    expect(usage).toBeGreaterThan(0);
    expect(usage).toBeLessThanOrEqual(64 * MiB);
    expect(value(s, 'container_memory_working_set_bytes')).toBeLessThanOrEqual(usage);
    const st = await adapter.client.runtime.containerStatus({ containerId: sleepers, verbose: false });
    expect(value(s, 'container_start_time_seconds')).toBe(Math.floor(Number(st.status!.startedAt) / 1e9));
    expect(Math.abs(value(s, 'container_last_seen') - Date.now() / 1000)).toBeLessThan(10);

    const b = containerMetrics(pod, busy);
    const fsUsage = b.find((x) => x.name === 'container_fs_usage_bytes')!;
    expect(Number(fsUsage.value!.value)).toBeGreaterThanOrEqual(20_000_000);
    const device = fsUsage.labelValues[6]!;
    const st2 = statfsSync(device);
    expect(value(b, 'container_fs_limit_bytes')).toBe(st2.blocks * st2.bsize);
    expect(value(b, 'container_fs_inodes_total')).toBe(st2.files);
  });

  it('reports the pod network counters under container POD, and they count traffic sent to the pod', async () => {
    const before = value((await podMetrics()).metrics, 'container_network_receive_bytes_total', { interface: 'eth0', container: 'POD' });
    const sock = createSocket('udp4');
    for (let i = 0; i < 10; i++) await new Promise<void>((r) => sock.send(Buffer.alloc(1000), 9, podIp, () => r()));
    sock.close();
    await sleep(200);
    const after = (await podMetrics()).metrics;
    expect(value(after, 'container_network_receive_bytes_total', { interface: 'eth0' }) - before).toBeGreaterThanOrEqual(10_000);
    expect(value(after, 'container_network_receive_packets_total', { interface: 'eth0' })).toBeGreaterThanOrEqual(10);
    // The pod's own cgroup-less figures: the sum of its tasks.
    expect(value(after, 'container_memory_usage_bytes')).toBeGreaterThan(0);
  });

  it('StreamPodSandboxMetrics sends the same pods', async () => {
    const batches = await adapter.client.stream((md, o) => adapter.client.raw.runtime.streamPodSandboxMetrics({}, md, o));
    const ids = batches.flatMap((b) => b.podSandboxMetrics.map((p) => p.podSandboxId));
    expect(ids).toContain(podId);
    const listed = (await adapter.client.runtime.listPodSandboxMetrics({})).podMetrics.map((p) => p.podSandboxId);
    expect(ids.sort()).toEqual(listed.sort());
  });
});
