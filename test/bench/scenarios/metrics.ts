import { performance } from 'node:perf_hooks';
import { criOperationMeter } from '../../../src/metrics';
import { startAdapter } from '../../support/adapter-process';
import { harnessAdapterArgs } from '../../support/harness-adapter';
import { getMetrics, metricsPort } from '../../support/metrics-endpoint';
import { summarize, timeCalls } from '../measure';
import type { BenchRow, Scenario } from '../types';

/**
 * What serving /metrics costs the CRI path: Status p50/p99 while a client
 * scrapes the endpoint back to back (far more often than Prometheus's 15 s,
 * the worst case) against Status with no scraper, in alternating rounds on
 * one adapter so machine noise falls on both alike. Also the in-process cost
 * of the dispatch wrapper's meter per call.
 */
export const metrics: Scenario = {
  name: 'metrics',
  async run({ harness }) {
    const adapter = await startAdapter({
      containerdAddress: harness.containerd.address,
      namespace: 'cri-adapter-bench-metrics',
      cniConfDir: harness.cni.confDir,
      extraArgs: harnessAdapterArgs(harness, ['--log-level', 'info', '--metrics-address', '127.0.0.1:0']),
    });
    try {
      const port = metricsPort(adapter.logs());
      const status = () => adapter.client.runtime.status({ verbose: false });
      await timeCalls(status, 0, 2000);
      const withScrape: number[] = [];
      const without: number[] = [];
      const scrapeMs: number[] = [];
      let bytes = 0;
      for (let round = 0; round < 10; round++) {
        let on = true;
        const loop = (async () => {
          while (on) {
            const t0 = performance.now();
            bytes = (await getMetrics(port)).body.length;
            scrapeMs.push(performance.now() - t0);
          }
        })();
        withScrape.push(...(await timeCalls(status, 200, 0)));
        on = false;
        await loop;
        without.push(...(await timeCalls(status, 200, 0)));
      }
      // In-process: what the dispatch wrapper adds per call to count it.
      const meter = criOperationMeter('BenchOnly');
      const n = 1_000_000;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) meter.done(0.0003);
      const nsPerCall = ((performance.now() - t0) * 1e6) / n;
      const scrapes = summarize(scrapeMs);
      return [
        {
          scenario: 'Status',
          subject: 'cri-adapter, /metrics scraped back to back',
          reference: 'cri-adapter, no scraper (alternate rounds)',
          subjectSample: summarize(withScrape),
          referenceSample: summarize(without),
          note:
            `a scrape (${bytes} bytes) takes p50 ${scrapes.p50.toFixed(2)} ms, p99 ${scrapes.p99.toFixed(2)} ms over ${scrapes.n} scrapes; ` +
            `the dispatch meter costs ${nsPerCall.toFixed(0)} ns per call in process; machine shared with other work, so expect noise`,
        } satisfies BenchRow,
      ];
    } finally {
      await adapter.stop();
    }
  },
};
