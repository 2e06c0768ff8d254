import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { ImageStatusRequest, ListImagesRequest, PullImageRequest, RemoveImageRequest } from '../../../src/gen/runtime/v1/api';
import { buildImage, BuiltImage, pushImage } from '../../harness/images';
import { waitFor } from '../../harness/util';
import type { CriClient } from '../../support/cri-client';
import { compare, summarize } from '../measure';
import { cpuMsOf, pidWithArg } from '../proc';
import type { BenchContext, BenchRow, Scenario } from '../types';

/**
 * Images through the adapter against containerd's own CRI plugin, both
 * pulling from the harness's local registry into the same containerd:
 *
 *  - a cold PullImage of a 5-layer image (4 MiB of random bytes per layer):
 *    between rounds each side removes the image and containerd's GC runs,
 *    so every pull downloads, writes and unpacks everything again;
 *  - ListImages and ImageStatus with 300 distinct small images present on
 *    each side (what the kubelet asks on every pod sync and image GC pass).
 */

const CRI_PLUGIN_NAMESPACE = 'k8s.io';
const LAYERS = 5;
const LAYER_BYTES = 4 << 20;
const COLD_ROUNDS = 7;
// BENCH_IMAGES_MANY: fewer images present, for a quick look at the cold pull alone.
const MANY = Number(process.env.BENCH_IMAGES_MANY ?? 300);

const execFileP = promisify(execFile);

async function contentDigests(address: string, namespace: string): Promise<Set<string>> {
  const { stdout } = await execFileP('ctr', ['--address', address, '-n', namespace, 'content', 'ls', '-q'], { timeout: 20_000 });
  return new Set(stdout.split('\n').map((l) => l.trim()).filter(Boolean));
}

/** Runs fn over items, `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

const pullRequest = (image: string) => PullImageRequest.fromPartial({ image: { image } });
const removeRequest = (image: string) => RemoveImageRequest.fromPartial({ image: { image } });

export const images: Scenario = {
  name: 'images',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const { harness, adapter, criPlugin, containerd } = ctx;
    const registry = harness.registry.host;
    const address = harness.containerd.address;
    const sides: { name: string; client: CriClient; namespace: string }[] = [
      { name: 'cri-adapter', client: adapter.client, namespace: containerd.namespace },
      { name: 'cri-plugin', client: criPlugin, namespace: CRI_PLUGIN_NAMESPACE },
    ];
    const rows: BenchRow[] = [];

    // --- cold pull -------------------------------------------------------
    const nonce = randomBytes(4).toString('hex');
    const big = buildImage({
      layers: Array.from({ length: LAYERS }, (_, i) => ({ entries: [{ type: 'file' as const, path: `data/${i}`, content: randomBytes(LAYER_BYTES) }] })),
      config: { cmd: ['/bin/true'], labels: { nonce } },
    });
    const bigRef = (await pushImage(registry, 'cri-adapter-bench/layers', nonce, big)).reference;
    const digests = [big.manifest, big.config, ...big.layers].map((b) => b.digest);

    /** Removes the image on one side and waits until containerd's GC has taken its content everywhere. */
    const makeCold = async (client: CriClient) => {
      await client.image.removeImage(removeRequest(bigRef));
      // The adapter deletes records without waiting for GC; a synchronous delete of a throwaway record makes GC run now.
      const trigger = `cri-adapter-bench-gc-${randomBytes(4).toString('hex')}`;
      await containerd.images.create({
        image: {
          name: trigger,
          labels: {},
          target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'1'.repeat(64)}`, size: 1n, annotations: {} },
          createdAt: undefined,
          updatedAt: undefined,
        },
      });
      await containerd.images.delete({ name: trigger, sync: true });
      await waitFor(
        `content of ${bigRef} to be gone after removal and GC`,
        async () => {
          const present = await Promise.all(sides.map((s) => contentDigests(address, s.namespace)));
          return present.every((set) => digests.every((d) => !set.has(d)));
        },
        { timeoutMs: 20_000, intervalMs: 100 },
      );
    };
    // CPU of the processes that do a pull's work: the adapter and containerd, or containerd alone.
    const containerdPid = pidWithArg(harness.containerd.configPath);
    const pidsOf = (client: CriClient) => (client === adapter.client ? [adapter.process.pid!, containerdPid] : [containerdPid]);
    const coldCpu = new Map<CriClient, number[]>([
      [adapter.client, []],
      [criPlugin, []],
    ]);
    const adapterCpu: number[] = [];
    const coldPull = async (client: CriClient): Promise<number> => {
      const cpu0 = cpuMsOf(pidsOf(client));
      const adapter0 = cpuMsOf([adapter.process.pid!]);
      const t0 = performance.now();
      const res = await client.image.pullImage(pullRequest(bigRef));
      const ms = performance.now() - t0;
      coldCpu.get(client)!.push(cpuMsOf(pidsOf(client)) - cpu0);
      if (client === adapter.client) adapterCpu.push(cpuMsOf([adapter.process.pid!]) - adapter0);
      if (res.imageRef !== big.config.digest) throw new Error(`pull of ${bigRef} returned ${res.imageRef}, want ${big.config.digest}`);
      await makeCold(client);
      return ms;
    };
    // one unmeasured round each: connections, registry page cache
    for (const s of sides) await coldPull(s.client);
    for (const samples of [...coldCpu.values(), adapterCpu]) samples.length = 0;
    const cold = { subject: [] as number[], reference: [] as number[] };
    for (let i = 0; i < COLD_ROUNDS; i++) {
      cold.subject.push(await coldPull(adapter.client));
      cold.reference.push(await coldPull(criPlugin));
    }
    rows.push({
      scenario: `PullImage cold (${LAYERS} x ${LAYER_BYTES >> 20} MiB layers)`,
      subject: 'cri-adapter',
      reference: "containerd's CRI plugin",
      subjectSample: summarize(cold.subject),
      referenceSample: summarize(cold.reference),
    });
    rows.push({
      scenario: `PullImage cold (${LAYERS} x ${LAYER_BYTES >> 20} MiB layers) CPU ms`,
      subject: 'adapter+containerd',
      reference: 'containerd (plugin)',
      subjectSample: summarize(coldCpu.get(adapter.client)!),
      referenceSample: summarize(coldCpu.get(criPlugin)!),
      note: `the adapter alone ${summarize(adapterCpu).p50} ms`,
    });

    // --- many images present ---------------------------------------------
    const t0 = performance.now();
    const small: BuiltImage[] = Array.from({ length: MANY }, (_, i) =>
      buildImage({ layers: [{ entries: [{ type: 'file', path: 'id', content: `bench image ${i} ${nonce}\n` }] }], config: { cmd: ['/id'] } }),
    );
    const refs: string[] = [];
    // Each image is pulled on both sides as soon as it is pushed.
    await pool(
      small.map((img, i) => ({ img, i })),
      16,
      async ({ img, i }) => {
        const ref = (await pushImage(registry, 'cri-adapter-bench/many', `${nonce}-${i}`, img)).reference;
        refs[i] = ref;
        await Promise.all(sides.map((s) => s.client.image.pullImage(pullRequest(ref))));
      },
    );
    const counts = await Promise.all(sides.map(async (s) => (await s.client.image.listImages(ListImagesRequest.fromPartial({}))).images.length));
    process.stderr.write(`  ${MANY} images pushed and pulled on both sides in ${((performance.now() - t0) / 1000).toFixed(1)} s; listed: ${counts.join(' / ')}\n`);
    if (counts.some((n) => n < MANY)) throw new Error(`expected at least ${MANY} images on each side, got ${counts.join(' / ')}`);

    const list = await compare(
      () => adapter.client.image.listImages(ListImagesRequest.fromPartial({})),
      () => criPlugin.image.listImages(ListImagesRequest.fromPartial({})),
      { rounds: 10, perRound: 30, warmup: 20 },
    );
    rows.push({ scenario: `ListImages (${MANY} images)`, subject: 'cri-adapter', reference: "containerd's CRI plugin", subjectSample: list.subject, referenceSample: list.reference });

    let k = 0;
    const statusRequest = () => ImageStatusRequest.fromPartial({ image: { image: refs[k++ % refs.length]! }, verbose: false });
    const status = await compare(
      () => adapter.client.image.imageStatus(statusRequest()),
      () => criPlugin.image.imageStatus(statusRequest()),
      { rounds: 10, perRound: 100, warmup: 50 },
    );
    rows.push({ scenario: `ImageStatus (${MANY} images)`, subject: 'cri-adapter', reference: "containerd's CRI plugin", subjectSample: status.subject, referenceSample: status.reference });
    return rows;
  },
};
