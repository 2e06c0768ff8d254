import { performance } from 'node:perf_hooks';
import { PodSandboxConfig, RunPodSandboxRequest } from '../../../src/gen/runtime/v1/api';
import type { CriClient } from '../../support/cri-client';
import { Sample, summarize } from '../measure';
import { cpuMs, machineCpuMs, pidWithArg } from '../proc';
import type { BenchRow, Scenario } from '../types';

/**
 * Pod sandbox life cycle through the adapter against containerd's own CRI
 * plugin on the same containerd, with the same CNI network (the harness conf
 * dir: bridge + portmap + loopback) and the same pause image from the local
 * registry: RunPodSandbox, StopPodSandbox and RemovePodSandbox one at a time
 * (rounds interleaved so machine noise lands on both alike), then a burst of
 * pods started at once (batch wall time and per-call latency).
 */

const ROUNDS = 10;
const BURST = 20;
const BURST_BATCHES = 2;
const LABEL = { bench: 'sandboxes' };

let seq = 0;
function podConfig(prefix: string): PodSandboxConfig {
  const n = `${prefix}-${process.pid}-${seq++}`;
  return PodSandboxConfig.fromPartial({
    metadata: { name: n, namespace: 'bench', uid: `uid-${n}`, attempt: 0 },
    hostname: n,
    labels: LABEL,
    linux: {},
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
}

interface LifeCycleTimes {
  run: number[];
  stop: number[];
  remove: number[];
}

async function oneLifeCycle(client: CriClient, prefix: string, into: LifeCycleTimes): Promise<void> {
  const [r, tRun] = await timed(() => client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig(prefix) })));
  const [, tStop] = await timed(() => client.runtime.stopPodSandbox({ podSandboxId: r.podSandboxId }));
  const [, tRemove] = await timed(() => client.runtime.removePodSandbox({ podSandboxId: r.podSandboxId }));
  into.run.push(tRun);
  into.stop.push(tStop);
  into.remove.push(tRemove);
}

interface BurstTimes {
  wall: number[];
  /** Machine-wide CPU ms per pod of each batch, and the runtime process's own share. */
  machineCpuPerPod: number[];
  processCpuPerPod: number[];
  run: number[];
  stopWall: number[];
  stop: number[];
  remove: number[];
}

/** BURST pods started at once; then all stopped at once, then all removed at once. */
async function burst(client: CriClient, prefix: string, into: BurstTimes, runtimePid: number): Promise<void> {
  const machine0 = machineCpuMs();
  const process0 = cpuMs(runtimePid);
  const t0 = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: BURST }, () => timed(() => client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig(prefix) })))),
  );
  into.wall.push(performance.now() - t0);
  into.machineCpuPerPod.push((machineCpuMs() - machine0) / BURST);
  into.processCpuPerPod.push((cpuMs(runtimePid) - process0) / BURST);
  const ids: string[] = [];
  const failures: string[] = [];
  for (const r of results) {
    if (r.status === 'fulfilled') {
      ids.push(r.value[0].podSandboxId);
      into.run.push(r.value[1]);
    } else {
      failures.push((r.reason as Error).message);
    }
  }
  const t1 = performance.now();
  for (const t of await Promise.all(ids.map((id) => timed(() => client.runtime.stopPodSandbox({ podSandboxId: id }))))) into.stop.push(t[1]);
  into.stopWall.push(performance.now() - t1);
  for (const t of await Promise.all(ids.map((id) => timed(() => client.runtime.removePodSandbox({ podSandboxId: id }))))) into.remove.push(t[1]);
  if (failures.length) throw new Error(`${failures.length} of ${BURST} concurrent RunPodSandbox calls failed: ${failures[0]}`);
}

/** Stops and removes whatever a failed run left (the bench's pods carry LABEL). */
async function sweep(client: CriClient): Promise<void> {
  const { items } = await client.runtime.listPodSandbox({ filter: { id: '', state: undefined, labelSelector: LABEL } }).catch(() => ({ items: [] }));
  for (const p of items) {
    await client.runtime.stopPodSandbox({ podSandboxId: p.id }).catch(() => undefined);
    await client.runtime.removePodSandbox({ podSandboxId: p.id }).catch(() => undefined);
  }
}

export const sandboxes: Scenario = {
  name: 'sandboxes',
  async run({ adapter, criPlugin, harness }) {
    const containerdPid = pidWithArg(harness.containerd.configPath);
    const subject = adapter.client;
    const PLUGIN = "containerd's CRI plugin";
    try {
      // Warm-up: each side pulls the pause image and runs its first CNI ADD.
      const scratch: LifeCycleTimes = { run: [], stop: [], remove: [] };
      for (let i = 0; i < 2; i++) {
        await oneLifeCycle(subject, 'warm-a', scratch);
        await oneLifeCycle(criPlugin, 'warm-p', scratch);
      }

      const a: LifeCycleTimes = { run: [], stop: [], remove: [] };
      const p: LifeCycleTimes = { run: [], stop: [], remove: [] };
      for (let i = 0; i < ROUNDS; i++) {
        await oneLifeCycle(subject, 'seq-a', a);
        await oneLifeCycle(criPlugin, 'seq-p', p);
      }

      const ab: BurstTimes = { wall: [], machineCpuPerPod: [], processCpuPerPod: [], run: [], stopWall: [], stop: [], remove: [] };
      const pb: BurstTimes = { wall: [], machineCpuPerPod: [], processCpuPerPod: [], run: [], stopWall: [], stop: [], remove: [] };
      for (let i = 0; i < BURST_BATCHES; i++) {
        await burst(subject, 'burst-a', ab, adapter.process.pid!);
        await burst(criPlugin, 'burst-p', pb, containerdPid);
      }

      const row = (scenario: string, s: number[], r: number[], note?: string): BenchRow => ({
        scenario,
        subject: 'cri-adapter',
        reference: PLUGIN,
        subjectSample: summarize(s) as Sample,
        referenceSample: summarize(r) as Sample,
        ...(note ? { note } : {}),
      });
      return [
        row('RunPodSandbox (sequential)', a.run, p.run),
        row('StopPodSandbox (sequential)', a.stop, p.stop),
        row('RemovePodSandbox (sequential)', a.remove, p.remove),
        row(`RunPodSandbox x${BURST} concurrent: batch wall time`, ab.wall, pb.wall),
        row(`RunPodSandbox x${BURST} concurrent: per call`, ab.run, pb.run),
        row(
          `RunPodSandbox x${BURST} concurrent: machine CPU ms per pod`,
          ab.machineCpuPerPod,
          pb.machineCpuPerPod,
          `every process on the machine; the adapter process itself ${summarize(ab.processCpuPerPod).p50.toFixed(1)} ms per pod, containerd (with the plugin) ${summarize(pb.processCpuPerPod).p50.toFixed(1)} ms`,
        ),
        row(`StopPodSandbox x${BURST} concurrent: batch wall time`, ab.stopWall, pb.stopWall),
        row(`StopPodSandbox x${BURST} concurrent: per call`, ab.stop, pb.stop),
        row(`RemovePodSandbox x${BURST} concurrent: per call`, ab.remove, pb.remove),
      ];
    } finally {
      await sweep(subject);
      await sweep(criPlugin);
    }
  },
};
