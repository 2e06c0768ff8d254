/**
 * UpdateRuntimeConfig's pod CIDR reaching CNI (the ipRanges capability), and
 * UpdatePodSandboxResources reaching the pod's infra cgroup.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PodSandboxConfig, RunPodSandboxRequest, UpdatePodSandboxResourcesRequest } from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import type { AdapterProcess } from '../support/adapter-process';
import { criError } from '../support/cri-client';
import { startHarnessAdapter } from '../support/harness-adapter';

const h = loadHarnessEnv();
// A bridge and subnet of this file's own (the harness's bridge is configured by its own network).
const BRIDGE = `${h.cni.bridge}r`.slice(0, 15);
const SUBNET = h.cni.subnet.replace(/^10\.199\./, '10.198.');
let adapter: AdapterProcess;
let confDir: string;
let seq = 0;
const NAMESPACE = 'cri-adapter-it-runtime-config';

function pod(): PodSandboxConfig {
  const n = `rc-${seq++}`;
  return PodSandboxConfig.fromPartial({ metadata: { name: n, namespace: 'it', uid: `uid-${n}` }, linux: {} });
}

beforeAll(async () => {
  // An IPAM with no range of its own: it must come from the runtime.
  confDir = mkdtempSync(path.join(h.tmpDir, 'net-iprange-'));
  const dataDir = path.join(confDir, 'ipam');
  mkdirSync(dataDir);
  writeFileSync(
    path.join(confDir, '10-iprange.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'iprange-test',
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          // No gateway address: this test needs an IP, not traffic (and the bridge plugin's gateway
          // setup fails on a fresh bridge on this kernel: "could not set bridge's mac").
          isGateway: false,
          isDefaultGateway: false,
          ipMasq: false,
          capabilities: { ipRanges: true },
          ipam: { type: 'host-local', dataDir },
        },
        { type: 'loopback' },
      ],
    }),
  );
  // A directory of this file's own, so the adapter can be restarted on it.
  adapter = await startHarnessAdapter(h, { namespace: NAMESPACE, cniConfDir: confDir, dir: mkdtempSync('/tmp/cri-adapter-proc-') });
});

afterAll(async () => {
  await adapter.stop();
  rmSync(adapter.dir, { recursive: true, force: true });
  spawnSync('ip', ['link', 'del', BRIDGE]);
});

it('hands the pod CIDR from UpdateRuntimeConfig to plugins that take ipRanges', async () => {
  const before = await criError(adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: pod() })));
  expect(before.details).toContain('CNI ADD');

  await adapter.client.runtime.updateRuntimeConfig({ runtimeConfig: { networkConfig: { podCidr: SUBNET } } });
  const { podSandboxId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: pod() }));
  try {
    const ip = (await adapter.client.runtime.podSandboxStatus({ podSandboxId, verbose: false })).status!.network!.ip;
    const prefix = SUBNET.split('.').slice(0, 3).join('.') + '.';
    expect(ip.startsWith(prefix)).toBe(true);
  } finally {
    await adapter.client.runtime.removePodSandbox({ podSandboxId });
  }
});

it('applies UpdatePodSandboxResources to the infra cgroup, and refuses unknown pods', async () => {
  await adapter.client.runtime.updateRuntimeConfig({ runtimeConfig: { networkConfig: { podCidr: SUBNET } } });
  const { podSandboxId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: pod() }));
  try {
    const limitFile = `/sys/fs/cgroup/memory/cri-adapter/${podSandboxId}/memory.limit_in_bytes`;
    await adapter.client.runtime.updatePodSandboxResources(
      UpdatePodSandboxResourcesRequest.fromPartial({ podSandboxId, resources: { memoryLimitInBytes: 96n * 1024n * 1024n } }),
    );
    expect(Number(readFileSync(limitFile, 'utf8'))).toBe(96 * 1024 * 1024);
    const unknown = await criError(adapter.client.runtime.updatePodSandboxResources(UpdatePodSandboxResourcesRequest.fromPartial({ podSandboxId: 'nope' })));
    expect(unknown.code).toBe(5 /* NOT_FOUND */);
  } finally {
    await adapter.client.runtime.removePodSandbox({ podSandboxId });
  }
});

it('keeps a pod resource update across an adapter restart: the infra cgroup, the stored spec and the next update', async () => {
  await adapter.client.runtime.updateRuntimeConfig({ runtimeConfig: { networkConfig: { podCidr: SUBNET } } });
  const { podSandboxId } = await adapter.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: pod() }));
  const cgroup = `/sys/fs/cgroup/cpu/cri-adapter/${podSandboxId}`;
  const memoryLimit = () => Number(readFileSync(`/sys/fs/cgroup/memory/cri-adapter/${podSandboxId}/memory.limit_in_bytes`, 'utf8'));
  const specResources = async () => {
    const { info } = await adapter.client.runtime.podSandboxStatus({ podSandboxId, verbose: true });
    return (JSON.parse(info.info!) as { runtimeSpec: { linux: { resources: { memory?: { limit?: number }; cpu?: { quota?: number } } } } })
      .runtimeSpec.linux.resources;
  };
  // 80 MiB and a fifth of a CPU for the containers, plus the pod's overhead in MiB.
  const update = (overheadMi: bigint) =>
    adapter.client.runtime.updatePodSandboxResources(
      UpdatePodSandboxResourcesRequest.fromPartial({
        podSandboxId,
        resources: { memoryLimitInBytes: 80n * 1024n * 1024n, cpuQuota: 20_000n, cpuPeriod: 100_000n },
        overhead: { memoryLimitInBytes: overheadMi * 1024n * 1024n },
      }),
    );
  try {
    await update(16n);
    expect(memoryLimit()).toBe(96 * 1024 * 1024);
    expect((await specResources()).memory?.limit).toBe(96 * 1024 * 1024);

    // A crash, not a clean stop: what the adapter knows afterwards is what containerd kept.
    await adapter.kill();
    adapter = await startHarnessAdapter(h, { namespace: NAMESPACE, cniConfDir: confDir, dir: adapter.dir });
    const after = await specResources();
    expect(after.memory?.limit).toBe(96 * 1024 * 1024);
    expect(after.cpu?.quota).toBe(20_000);
    expect(memoryLimit()).toBe(96 * 1024 * 1024);
    expect(Number(readFileSync(`${cgroup}/cpu.cfs_quota_us`, 'utf8'))).toBe(20_000);

    // The restarted adapter takes further updates of the same pod.
    await update(32n);
    expect(memoryLimit()).toBe(112 * 1024 * 1024);
    expect((await specResources()).memory?.limit).toBe(112 * 1024 * 1024);
  } finally {
    await adapter.client.runtime.removePodSandbox({ podSandboxId });
  }
});
