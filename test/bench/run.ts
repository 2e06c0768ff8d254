import { ContainerdConnection } from '../../src/containerd/connection';
import { silentLogger } from '../../src/log/logger';
import { startHarness } from '../harness';
import { startAdapter } from '../support/adapter-process';
import { criClient } from '../support/cri-client';
import { harnessAdapterArgs } from '../support/harness-adapter';
import { freePort } from '../harness/util';
import { rssKindsMb } from './proc';
import { containers } from './scenarios/containers';
import { execLogs } from './scenarios/exec-logs';
import { images } from './scenarios/images';
import { metrics } from './scenarios/metrics';
import { sandboxes } from './scenarios/sandboxes';
import { nodeHeapMb, scale } from './scenarios/scale';
import { streaming } from './scenarios/streaming';
import { versionStatus } from './scenarios/version-status';
import type { BenchContext, BenchRow, Scenario } from './types';

// A new scenario is one file in scenarios/ and one entry here.
const SCENARIOS: Scenario[] = [versionStatus, images, sandboxes, containers, execLogs, streaming, metrics, scale];

function fmt(ms: number): string {
  return ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(2) : ms.toFixed(0);
}

function printTable(rows: BenchRow[]): void {
  const header = ['scenario', 'subject', 'reference', 'n', 'p50 ms', 'p99 ms', 'ref p50', 'ref p99', 'p50 ratio', 'p99 ratio'];
  const body = rows.map((r) => [
    r.scenario,
    r.subject,
    r.reference,
    String(r.subjectSample.n),
    fmt(r.subjectSample.p50),
    fmt(r.subjectSample.p99),
    fmt(r.referenceSample.p50),
    fmt(r.referenceSample.p99),
    (r.subjectSample.p50 / r.referenceSample.p50).toFixed(2) + 'x',
    (r.subjectSample.p99 / r.referenceSample.p99).toFixed(2) + 'x',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(line(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const b of body) console.log(line(b));
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const harness = await startHarness();
  let adapter;
  const containerd = new ContainerdConnection(
    { address: harness.containerd.address, namespace: 'cri-adapter-bench', callTimeoutMs: 30_000 },
    silentLogger(),
  );
  const criPlugin = criClient(harness.containerd.address);
  try {
    // The daemon logs at warn here, so its metrics port is chosen for it, not read from its info line.
    const adapterMetricsPort = await freePort();
    adapter = await startAdapter({
      containerdAddress: harness.containerd.address,
      namespace: 'cri-adapter-bench',
      cniConfDir: harness.cni.confDir,
      // The harness's hosts.toml (plain http to the local registry), as containerd's CRI plugin uses.
      // Metrics on, as deploy/install.sh configures a node (the memory notes read the heap figures there).
      extraArgs: harnessAdapterArgs(harness, ['--log-level', 'warn', '--metrics-address', `127.0.0.1:${adapterMetricsPort}`]),
    });
    await containerd.start();
    const printed: string[] = [];
    const ctx: BenchContext = { harness, adapter, adapterMetricsPort, criPlugin, containerd, print: (text) => printed.push(text) };
    const rows: BenchRow[] = [];
    const printRss = async (when: string) => {
      const rss = rssKindsMb(adapter!.process.pid!);
      const heap = await nodeHeapMb(adapterMetricsPort);
      process.stderr.write(
        `  adapter RSS ${when}: anonymous ${rss.anon.toFixed(1)} MB (V8 heap ${heap.total.toFixed(1)} (used ${heap.used.toFixed(1)}), Buffers ${heap.external.toFixed(1)}), file-backed ${rss.file.toFixed(1)} MB\n`,
      );
    };
    await printRss('at start');
    for (const s of SCENARIOS) {
      if (only.length && !only.includes(s.name)) continue;
      process.stderr.write(`running ${s.name}...\n`);
      rows.push(...(await s.run(ctx)));
      // What each scenario leaves resident in the daemon (the scale scenario's RSS row comes after all earlier ones).
      await printRss(`after ${s.name}`);
    }
    console.log(`\ncri-adapter benchmarks (${new Date().toISOString()}); ratio = subject / reference, measured in the same run\n`);
    printTable(rows);
    const notes = rows.filter((r) => r.note);
    if (notes.length) console.log('\nNotes:\n' + notes.map((r) => `- ${r.scenario}: ${r.note}`).join('\n'));
    for (const text of printed) console.log('\n' + text);
  } finally {
    containerd.close();
    criPlugin.close();
    await adapter?.stop();
    await harness.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
