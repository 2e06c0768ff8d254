import { readdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import {
  ContainerStatusRequest,
  CreateContainerRequest,
  ListContainersRequest,
  ListContainerStatsRequest,
  ListPodSandboxRequest,
  ListPodSandboxStatsRequest,
  NamespaceMode,
  PodSandboxConfig,
  PodSandboxStatusRequest,
  PullImageRequest,
  RunPodSandboxRequest,
} from '../../../src/gen/runtime/v1/api';
import type { CriClient } from '../../support/cri-client';
import { summarize, timeCalls } from '../measure';
import { getMetrics } from '../../support/metrics-endpoint';
import { cpuMsOf, pidWithArg, rssKindsMb, rssMb } from '../proc';
import type { BenchContext, BenchRow, Scenario } from '../types';

/**
 * A node at scale: N running pods (host network, one `sleep` container
 * each, a cgroup parent of their own as the kubelet gives them) on the
 * adapter and, at the same time, on containerd's own CRI plugin on the same
 * containerd. For each N:
 *
 *  - the kubelet's List/Status/Stats calls, sequential, latency and the CPU
 *    time each call costs: the adapter's plus containerd's (from /proc)
 *    against containerd's alone for the plugin;
 *  - a kubelet-like loop (generic PLEG: every second ListPodSandbox,
 *    ListContainers and a status call per pod and per container, all pods'
 *    status calls at once as the pod workers do; both stats lists every
 *    10 s), as CPU ms per second of loop;
 *  - RSS of the adapter and of containerd.
 *
 * Subject and reference alternate round by round. N and the loop length can
 * be set with BENCH_SCALE_PODS=10,50,110 and BENCH_SCALE_LOOP_ROUNDS=3
 * (10 s each).
 */

const PLUGIN = "containerd's CRI plugin";
const LABEL = { bench: 'scale' };
const CONCURRENCY = 4;
const LOOP_ROUND_S = 10;
const STATS_EVERY_S = 10;

function envList(name: string, fallback: number[]): number[] {
  const v = process.env[name];
  return v ? v.split(',').map(Number).filter((n) => n > 0) : fallback;
}

interface Side {
  name: string;
  client: CriClient;
  /** Processes whose CPU time this side costs the node. */
  pids: number[];
  pods: string[];
  containers: string[];
}

let seq = 0;

async function addPod(side: Side, image: string, cgroupRoot: string): Promise<void> {
  const n = `scale-${side.name}-${process.pid}-${seq++}`;
  const config = PodSandboxConfig.fromPartial({
    metadata: { name: n, namespace: 'bench', uid: `uid-${n}`, attempt: 0 },
    labels: LABEL,
    linux: {
      cgroupParent: `${cgroupRoot}/${n}`,
      // Host network: the figures are List/Status/Stats, not CNI.
      securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.POD } },
    },
  });
  const { podSandboxId } = await side.client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
  side.pods.push(podSandboxId);
  const { containerId } = await side.client.runtime.createContainer(
    CreateContainerRequest.fromPartial({
      podSandboxId,
      sandboxConfig: config,
      config: {
        metadata: { name: 'sleep' },
        image: { image },
        command: ['sleep', '36000'],
        labels: LABEL,
        linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.POD } } },
      },
    }),
  );
  await side.client.runtime.startContainer({ containerId });
  side.containers.push(containerId);
}

async function grow(side: Side, n: number, image: string, cgroupRoot: string): Promise<void> {
  let missing = n - side.pods.length;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (missing > 0) {
        missing--;
        await addPod(side, image, cgroupRoot);
      }
    }),
  );
}

async function sweep(client: CriClient): Promise<void> {
  const { items } = await client.runtime
    .listPodSandbox(ListPodSandboxRequest.fromPartial({ filter: { labelSelector: LABEL } }))
    .catch(() => ({ items: [] as { id: string }[] }));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < items.length) {
        const id = items[next++]!.id;
        await client.runtime.stopPodSandbox({ podSandboxId: id }).catch(() => undefined);
        await client.runtime.removePodSandbox({ podSandboxId: id }).catch(() => undefined);
      }
    }),
  );
}

/** Empty cgroup directories the pods' parents left (the kubelet would remove them); busy ones stay. */
function removeCgroupTree(rel: string): void {
  const rm = (dir: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) rm(path.join(dir, e));
    try {
      rmdirSync(dir);
    } catch {
      // busy or not ours
    }
  };
  for (const h of readdirSync('/sys/fs/cgroup')) rm(path.join('/sys/fs/cgroup', h, rel));
}

interface CallFigures {
  latency: number[];
  /** CPU ms per call, one value per round. */
  cpuPerCall: number[];
}

/** One batch of calls on one side: latencies and the CPU its processes spent. */
async function batch(side: Side, fn: () => Promise<unknown>, calls: number, into: CallFigures): Promise<void> {
  const cpu0 = cpuMsOf(side.pids);
  into.latency.push(...(await timeCalls(fn, calls, 0)));
  into.cpuPerCall.push((cpuMsOf(side.pids) - cpu0) / calls);
}

interface CallSpec {
  name: string;
  make(side: Side): () => Promise<unknown>;
  /** Calls per round: enough CPU time for /proc's 10 ms ticks to resolve. */
  perRound: number;
}

function roundRobin<T>(items: T[]): () => T {
  let i = 0;
  return () => items[i++ % items.length]!;
}

const CALLS: CallSpec[] = [
  { name: 'ListPodSandbox', perRound: 200, make: (s) => () => s.client.runtime.listPodSandbox(ListPodSandboxRequest.fromPartial({})) },
  { name: 'ListContainers', perRound: 200, make: (s) => () => s.client.runtime.listContainers(ListContainersRequest.fromPartial({})) },
  {
    name: 'PodSandboxStatus',
    perRound: 400,
    make: (s) => {
      const next = roundRobin(s.pods);
      return () => s.client.runtime.podSandboxStatus(PodSandboxStatusRequest.fromPartial({ podSandboxId: next() }));
    },
  },
  {
    name: 'ContainerStatus',
    perRound: 400,
    make: (s) => {
      const next = roundRobin(s.containers);
      return () => s.client.runtime.containerStatus(ContainerStatusRequest.fromPartial({ containerId: next() }));
    },
  },
  { name: 'ListContainerStats', perRound: 10, make: (s) => () => s.client.runtime.listContainerStats(ListContainerStatsRequest.fromPartial({})) },
  { name: 'ListPodSandboxStats', perRound: 10, make: (s) => () => s.client.runtime.listPodSandboxStats(ListPodSandboxStatsRequest.fromPartial({})) },
];

/** One second of what a kubelet with generic PLEG asks of its runtime. */
async function kubeletTick(side: Side, withStats: boolean): Promise<void> {
  const rt = side.client.runtime;
  await rt.listPodSandbox(ListPodSandboxRequest.fromPartial({}));
  await rt.listContainers(ListContainersRequest.fromPartial({}));
  await Promise.all([
    ...side.pods.map((podSandboxId) => rt.podSandboxStatus(PodSandboxStatusRequest.fromPartial({ podSandboxId }))),
    ...side.containers.map((containerId) => rt.containerStatus(ContainerStatusRequest.fromPartial({ containerId }))),
  ]);
  if (withStats) {
    await rt.listPodSandboxStats(ListPodSandboxStatsRequest.fromPartial({}));
    await rt.listContainerStats(ListContainerStatsRequest.fromPartial({}));
  }
}

/** Runs the loop for one round; returns CPU ms per second of loop and the slowest tick's ms. */
async function kubeletRound(side: Side, seconds: number): Promise<{ cpuPerS: number; worstTickMs: number }> {
  const cpu0 = cpuMsOf(side.pids);
  const t0 = Date.now();
  let worst = 0;
  for (let s = 0; s < seconds; s++) {
    const tick = Date.now();
    await kubeletTick(side, s % STATS_EVERY_S === 0);
    worst = Math.max(worst, Date.now() - tick);
    const wait = t0 + (s + 1) * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return { cpuPerS: (cpuMsOf(side.pids) - cpu0) / ((Date.now() - t0) / 1000), worstTickMs: worst };
}

const median = (xs: number[]): number => summarize(xs).p50;

/** The daemon's own heap figures, in MB, from prom-client's Node metrics. */
export async function nodeHeapMb(port: number): Promise<{ used: number; total: number; external: number }> {
  const body = (await getMetrics(port)).body;
  const mb = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(body)?.[1] ?? NaN) / (1024 * 1024);
  return { used: mb('nodejs_heap_size_used_bytes'), total: mb('nodejs_heap_size_total_bytes'), external: mb('nodejs_external_memory_bytes') };
}

export const scale: Scenario = {
  name: 'scale',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const { harness, criPlugin, adapter } = ctx;
    const image = harness.images.busybox;
    const counts = envList('BENCH_SCALE_PODS', [10, 50, 110]);
    const loopRounds = envList('BENCH_SCALE_LOOP_ROUNDS', [3])[0]!;
    const containerdPid = pidWithArg(harness.containerd.configPath);
    const adapterPid = adapter.process.pid!;
    const cgroupRoot = `/cri-adapter-bench-${process.pid}`;
    const a: Side = { name: 'adapter', client: adapter.client, pids: [adapterPid, containerdPid], pods: [], containers: [] };
    const p: Side = { name: 'plugin', client: criPlugin, pids: [containerdPid], pods: [], containers: [] };
    const rows: BenchRow[] = [];
    // figure name -> value per N, for the growth table.
    const growth = new Map<string, number[]>();
    const note = (figure: string, v: number) => {
      if (!growth.has(figure)) growth.set(figure, []);
      growth.get(figure)!.push(v);
    };
    try {
      for (const side of [a, p]) await side.client.image.pullImage(PullImageRequest.fromPartial({ image: { image } }));
      for (const n of counts) {
        process.stderr.write(`  scale: ${n} pods per runtime...\n`);
        await grow(a, n, image, `${cgroupRoot}/a`);
        await grow(p, n, image, `${cgroupRoot}/p`);
        await new Promise((r) => setTimeout(r, 2000));

        for (const spec of CALLS) {
          const fa = { latency: [], cpuPerCall: [] } as CallFigures;
          const fp = { latency: [], cpuPerCall: [] } as CallFigures;
          const callA = spec.make(a);
          const callP = spec.make(p);
          let failed: string | undefined;
          try {
            await timeCalls(callA, 0, Math.min(50, spec.perRound));
            await timeCalls(callP, 0, Math.min(50, spec.perRound));
            for (let r = 0; r < 5; r++) {
              await batch(a, callA, spec.perRound, fa);
              await batch(p, callP, spec.perRound, fp);
            }
          } catch (err) {
            failed = (err as Error).message.slice(0, 120);
          }
          if (failed) {
            rows.push({
              scenario: `${spec.name} (${n} pods)`,
              subject: 'cri-adapter',
              reference: PLUGIN,
              subjectSample: summarize(fa.latency),
              referenceSample: summarize(fp.latency),
              note: `a call failed: ${failed}`,
            });
            continue;
          }
          const ls = summarize(fa.latency);
          const lp = summarize(fp.latency);
          rows.push({ scenario: `${spec.name} (${n} pods)`, subject: 'cri-adapter', reference: PLUGIN, subjectSample: ls, referenceSample: lp });
          rows.push({
            scenario: `${spec.name} (${n} pods) CPU ms/call`,
            subject: 'adapter+containerd',
            reference: 'containerd (plugin)',
            subjectSample: summarize(fa.cpuPerCall),
            referenceSample: summarize(fp.cpuPerCall),
          });
          note(`${spec.name} p50 ms adapter`, ls.p50);
          note(`${spec.name} p50 ms plugin`, lp.p50);
          note(`${spec.name} p99 ms adapter`, ls.p99);
          note(`${spec.name} p99 ms plugin`, lp.p99);
          note(`${spec.name} CPU ms/call adapter+containerd`, median(fa.cpuPerCall));
          note(`${spec.name} CPU ms/call containerd (plugin)`, median(fp.cpuPerCall));
        }

        const la: number[] = [];
        const lp: number[] = [];
        const adapterOnly: number[] = [];
        let worstA = 0;
        let worstP = 0;
        for (let r = 0; r < loopRounds; r++) {
          const c0 = cpuMsOf([adapterPid]);
          const t0 = Date.now();
          const ra = await kubeletRound(a, LOOP_ROUND_S);
          adapterOnly.push((cpuMsOf([adapterPid]) - c0) / ((Date.now() - t0) / 1000));
          const rp = await kubeletRound(p, LOOP_ROUND_S);
          la.push(ra.cpuPerS);
          lp.push(rp.cpuPerS);
          worstA = Math.max(worstA, ra.worstTickMs);
          worstP = Math.max(worstP, rp.worstTickMs);
        }
        rows.push({
          scenario: `kubelet loop (${n} pods) CPU ms per s`,
          subject: 'adapter+containerd',
          reference: 'containerd (plugin)',
          subjectSample: summarize(la),
          referenceSample: summarize(lp),
          note: `${n} pods: the adapter alone ${median(adapterOnly).toFixed(0)} ms/s; slowest tick ${worstA} ms vs ${worstP} ms`,
        });
        note('kubelet loop CPU ms/s adapter+containerd', median(la));
        note('kubelet loop CPU ms/s adapter alone', median(adapterOnly));
        note('kubelet loop CPU ms/s containerd (plugin)', median(lp));
        note('RSS MB adapter', rssMb(adapterPid));
        const kinds = rssKindsMb(adapterPid);
        const heap = await nodeHeapMb(ctx.adapterMetricsPort);
        note('RSS MB adapter: anonymous', kinds.anon);
        note('RSS MB adapter: file-backed', kinds.file);
        note('MB adapter: V8 heap used', heap.used);
        note('MB adapter: V8 heap total', heap.total);
        note('MB adapter: external (Buffers)', heap.external);
        note('RSS MB containerd (both runtimes)', rssMb(containerdPid));
      }
      const head = ['figure', ...counts.map((n) => `N=${n}`), `per pod (N=${counts[0]}..${counts[counts.length - 1]})`];
      const body = [...growth].map(([figure, vs]) => {
        const slope = counts.length > 1 ? (vs[vs.length - 1]! - vs[0]!) / (counts[counts.length - 1]! - counts[0]!) : NaN;
        return [figure, ...vs.map((v) => v.toFixed(3)), slope.toFixed(4)];
      });
      const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
      const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
      ctx.print(
        [`scale: how each figure grows with N (pods per runtime)`, line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join(
          '\n',
        ),
      );
      return rows;
    } finally {
      await Promise.all([sweep(a.client), sweep(p.client)]);
      removeCgroupTree(cgroupRoot);
    }
  },
};
