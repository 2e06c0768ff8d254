import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  ContainerConfig,
  ContainerStatusRequest,
  CreateContainerRequest,
  DeepPartial,
  ListContainersRequest,
  NamespaceMode,
  PodSandboxConfig,
  PullImageRequest,
  RunPodSandboxRequest,
} from '../../../src/gen/runtime/v1/api';
import { startAdapter } from '../../support/adapter-process';
import type { CriClient } from '../../support/cri-client';
import { harnessAdapterArgs } from '../../support/harness-adapter';
import { compare, summarize } from '../measure';
import type { BenchContext, BenchRow, Scenario } from '../types';

/**
 * Containers through the adapter against containerd's own CRI plugin on the
 * same containerd, both running busybox from the harness registry in a pod
 * of their own, with a CRI log file per container:
 *
 *  - CreateContainer, StartContainer, StopContainer (a `sleep` in the pod's
 *    PID namespace, which dies on SIGTERM: the stop is the runtime's work,
 *    not the grace period) and
 *    RemoveContainer, one container at a time, rounds interleaved;
 *  - ListContainers (no filter) and ContainerStatus with 100 and then 500
 *    created (never started) containers present on each side.
 */

const ROUNDS = 10;
const WARMUP_ROUNDS = 2;
const MANY = [100, 500];
const CREATE_CONCURRENCY = 8;
const PLUGIN = "containerd's CRI plugin";
const LABEL = { bench: 'containers' };

interface Side {
  name: string;
  client: CriClient;
  podId: string;
  podConfig: PodSandboxConfig;
  /** Created-only containers for the list/status part. */
  many: string[];
}

let seq = 0;

function podConfig(prefix: string, logDirectory: string): PodSandboxConfig {
  const n = `${prefix}-${process.pid}-${seq++}`;
  return PodSandboxConfig.fromPartial({
    metadata: { name: n, namespace: 'bench', uid: `uid-${n}`, attempt: 0 },
    hostname: n,
    labels: LABEL,
    logDirectory,
    linux: {},
  });
}

/**
 * The pod's PID namespace, said explicitly: the adapter takes an absent
 * namespace_options as pid CONTAINER (the kubelet's default), containerd as
 * POD (the proto's zero value). Shared, `sleep` is not PID 1 and SIGTERM ends
 * it on both sides.
 */
function containerConfig(image: string, command: string[]): DeepPartial<ContainerConfig> {
  const name = `c-${seq++}`;
  return {
    metadata: { name },
    image: { image },
    command,
    logPath: `${name}.log`,
    labels: LABEL,
    linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.POD } } },
  };
}

async function createIn(side: Side, image: string, command: string[]): Promise<string> {
  const { containerId } = await side.client.runtime.createContainer(
    CreateContainerRequest.fromPartial({ podSandboxId: side.podId, config: containerConfig(image, command), sandboxConfig: side.podConfig }),
  );
  return containerId;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
}

/** Runs fn over items, `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

interface CycleTimes {
  create: number[];
  start: number[];
  stop: number[];
  remove: number[];
}

async function lifeCycle(side: Side, image: string, into: CycleTimes): Promise<void> {
  const [id, tCreate] = await timed(() => createIn(side, image, ['sleep', '3600']));
  const [, tStart] = await timed(() => side.client.runtime.startContainer({ containerId: id }));
  const [, tStop] = await timed(() => side.client.runtime.stopContainer({ containerId: id, timeout: 10n }));
  const [, tRemove] = await timed(() => side.client.runtime.removeContainer({ containerId: id }));
  into.create.push(tCreate);
  into.start.push(tStart);
  into.stop.push(tStop);
  into.remove.push(tRemove);
}

/** Removes the bench's containers and pods from one side (also after a failure). */
async function sweep(client: CriClient): Promise<void> {
  const { containers } = await client.runtime
    .listContainers(ListContainersRequest.fromPartial({ filter: { labelSelector: LABEL } }))
    .catch(() => ({ containers: [] as { id: string }[] }));
  await pool(containers.map((c) => c.id), CREATE_CONCURRENCY, (id) => client.runtime.removeContainer({ containerId: id }).catch(() => undefined));
  const { items } = await client.runtime.listPodSandbox({ filter: { id: '', state: undefined, labelSelector: LABEL } }).catch(() => ({ items: [] }));
  for (const p of items) {
    await client.runtime.stopPodSandbox({ podSandboxId: p.id }).catch(() => undefined);
    await client.runtime.removePodSandbox({ podSandboxId: p.id }).catch(() => undefined);
  }
}

export const containers: Scenario = {
  name: 'containers',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const { harness, criPlugin } = ctx;
    const image = harness.images.busybox;
    const logRoot = mkdtempSync(path.join(harness.tmpDir, 'bench-ctr-logs-'));
    let subject = ctx.adapter.client;
    // The adapter of the run must be able to run pods (pause image, runc root); if it cannot, use one that can.
    let own: Awaited<ReturnType<typeof startAdapter>> | undefined;
    const sides: Side[] = [];
    try {
      const probe = podConfig('probe', logRoot);
      const ok = await subject.runtime
        .runPodSandbox(RunPodSandboxRequest.fromPartial({ config: probe }))
        .then(async ({ podSandboxId }) => {
          await subject.runtime.stopPodSandbox({ podSandboxId });
          await subject.runtime.removePodSandbox({ podSandboxId });
          return true;
        })
        .catch(() => false);
      if (!ok) {
        own = await startAdapter({
          containerdAddress: harness.containerd.address,
          namespace: 'cri-adapter-bench-containers',
          cniConfDir: harness.cni.confDir,
          extraArgs: harnessAdapterArgs(harness, ['--log-level', 'warn']),
        });
        subject = own.client;
      }

      for (const [name, client] of [['cri-adapter', subject], ['cri-plugin', criPlugin]] as const) {
        await client.image.pullImage(PullImageRequest.fromPartial({ image: { image } }));
        const logDir = mkdtempSync(path.join(logRoot, `${name}-`));
        const config = podConfig(name, logDir);
        const { podSandboxId } = await client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
        sides.push({ name, client, podId: podSandboxId, podConfig: config, many: [] });
      }
      const [a, p] = sides as [Side, Side];

      // --- one container at a time -------------------------------------
      const scratch: CycleTimes = { create: [], start: [], stop: [], remove: [] };
      for (let i = 0; i < WARMUP_ROUNDS; i++) {
        await lifeCycle(a, image, scratch);
        await lifeCycle(p, image, scratch);
      }
      const at: CycleTimes = { create: [], start: [], stop: [], remove: [] };
      const pt: CycleTimes = { create: [], start: [], stop: [], remove: [] };
      for (let i = 0; i < ROUNDS; i++) {
        await lifeCycle(a, image, at);
        await lifeCycle(p, image, pt);
      }
      const row = (scenario: string, s: number[], r: number[], note?: string): BenchRow => ({
        scenario,
        subject: 'cri-adapter',
        reference: PLUGIN,
        subjectSample: summarize(s),
        referenceSample: summarize(r),
        ...(note ? { note } : {}),
      });
      const rows: BenchRow[] = [
        row('CreateContainer (sequential)', at.create, pt.create),
        row('StartContainer (sequential)', at.start, pt.start),
        row('StopContainer (sequential, exits on TERM)', at.stop, pt.stop),
        row('RemoveContainer (sequential)', at.remove, pt.remove),
      ];

      // --- with many containers present ----------------------------------
      for (const n of MANY) {
        for (const side of sides) {
          const missing = Array.from({ length: n - side.many.length }, (_, i) => i);
          await pool(missing, CREATE_CONCURRENCY, async () => side.many.push(await createIn(side, image, ['sleep', '3600'])));
        }
        const list = (client: CriClient) => () => client.runtime.listContainers(ListContainersRequest.fromPartial({}));
        const l = await compare(list(a.client), list(p.client), { rounds: 5, perRound: n >= 500 ? 10 : 20, warmup: 5 });
        rows.push({ scenario: `ListContainers (${n} present)`, subject: 'cri-adapter', reference: PLUGIN, subjectSample: l.subject, referenceSample: l.reference });
        let ia = 0;
        let ip = 0;
        const status = (side: Side, next: () => number) => () =>
          side.client.runtime.containerStatus(ContainerStatusRequest.fromPartial({ containerId: side.many[next() % side.many.length]! }));
        const s = await compare(status(a, () => ia++), status(p, () => ip++), { rounds: 10, perRound: 50, warmup: 20 });
        rows.push({ scenario: `ContainerStatus (${n} present)`, subject: 'cri-adapter', reference: PLUGIN, subjectSample: s.subject, referenceSample: s.reference });
      }
      return rows;
    } finally {
      await Promise.all([sweep(subject), sweep(criPlugin)]);
      await own?.stop();
      rmSync(logRoot, { recursive: true, force: true });
    }
  },
};
