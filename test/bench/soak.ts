/**
 * `npm run soak [-- CYCLES]`: cycles CYCLES pods (default 1000) through the
 * adapter (run, create+start a container, exec, stop, remove) on a fresh
 * harness and prints what it must not leak (test/support/soak.ts) at the
 * start, every 100 cycles and at the end. Exits non-zero when a containerd
 * object, mount, netns or IP allocation count ends above its start, or
 * the open fds grew by more than 5.
 */
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PullImageRequest } from '../../src/gen/runtime/v1/api';
import { startHarness } from '../harness';
import { startAdapter } from '../support/adapter-process';
import { harnessAdapterArgs } from '../support/harness-adapter';
import { cycle, formatSamples, OBJECT_FIELDS, sample, SoakSample, SoakTarget } from '../support/soak';

const NAMESPACE = 'cri-adapter-soak';

async function main(): Promise<void> {
  const cycles = Number(process.argv[2] ?? 1000);
  const every = Math.min(100, cycles);
  const harness = await startHarness({ criPlugin: false });
  let adapter;
  try {
    adapter = await startAdapter({
      containerdAddress: harness.containerd.address,
      namespace: NAMESPACE,
      cniConfDir: harness.cni.confDir,
      extraArgs: harnessAdapterArgs(harness, ['--log-level', 'warn']),
    });
    const logDir = mkdtempSync(path.join(harness.tmpDir, 'soak-logs-'));
    await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: harness.images.busybox } }));
    const target: SoakTarget = {
      client: adapter.client,
      adapterPid: adapter.process.pid!,
      adapterDir: adapter.dir,
      containerdAddress: harness.containerd.address,
      namespace: NAMESPACE,
      ipamDir: path.join(harness.tmpDir, 'cni', 'ipam', harness.cni.networkName),
      image: harness.images.busybox,
    };
    const pods = new Set<string>();
    // Warm-up: the first exec, FIFO helper and plugin runs open what then stays open.
    for (let i = 0; i < 2; i++) await cycle(target, -1 - i, pods, logDir);
    const samples: SoakSample[] = [await sample(target, 0, pods)];
    const t0 = performance.now();
    for (let i = 1; i <= cycles; i++) {
      await cycle(target, i, pods, logDir);
      if (i % every === 0 || i === cycles) {
        samples.push(await sample(target, i, pods));
        process.stderr.write(`${i}/${cycles} cycles, ${((performance.now() - t0) / i).toFixed(0)} ms per cycle\n`);
      }
    }
    console.log(`\ncri-adapter soak (${new Date().toISOString()}): ${cycles} cycles, ${((performance.now() - t0) / cycles).toFixed(0)} ms per cycle\n`);
    console.log(formatSamples(samples));
    const first = samples[0]!;
    const last = samples[samples.length - 1]!;
    const grown = OBJECT_FIELDS.filter((f) => last[f] > first[f]).map((f) => `${f} ${first[f]} -> ${last[f]}`);
    if (last.fds > first.fds + 5) grown.push(`fds ${first.fds} -> ${last.fds}`);
    if (grown.length) {
      console.log(`\ngrew with the cycle count: ${grown.join(', ')}`);
      process.exitCode = 1;
    } else {
      console.log('\nnothing grew with the cycle count (RSS is for reading: V8 grows its heap before it collects).');
    }
  } finally {
    await adapter?.stop();
    await harness.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
