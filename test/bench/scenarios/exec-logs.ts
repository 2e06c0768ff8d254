import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { bootWallNs, uptimeLineDelaysMs, uptimePrinter } from '../../support/log-delay';
import { compare, summarize } from '../measure';
import { Runtime, setUp, startContainer, waitExited } from '../runtimes';
import type { BenchContext, BenchRow, Scenario } from '../types';

/**
 * ExecSync round trip and container log throughput, through the adapter
 * and through containerd's built-in CRI plugin on the same containerd, in
 * the same run. Log throughput is the wall time for containers to write
 * LOG_MIB MiB of 101-byte lines until their status says EXITED (both
 * runtimes finish the log before reporting the exit), with the CRI log
 * bytes per second and the CPU share of the process doing the logging
 * (the adapter, or containerd for its plugin) in the note.
 */

const LOG_MIB = 64;
const ROUNDS = 3;
const PARALLEL = 10;

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 Hz on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const LINE = '0'.repeat(100);
const writer = ['sh', '-c', `yes ${LINE} | head -c ${LOG_MIB * 1024 * 1024}`];

async function logRound(rt: Runtime, image: string, containers: number): Promise<{ ms: number; bytes: number; cpu: number }> {
  const cpu0 = cpuSeconds(rt.pid);
  const t0 = performance.now();
  const started = await Promise.all(Array.from({ length: containers }, () => startContainer(rt, image, writer)));
  await Promise.all(started.map((c) => waitExited(rt, c.id)));
  const ms = performance.now() - t0;
  const bytes = started.reduce((n, c) => n + statSync(c.log).size, 0);
  const cpu = cpuSeconds(rt.pid) - cpu0;
  await Promise.all(started.map((c) => rt.client.runtime.removeContainer({ containerId: c.id })));
  return { ms, bytes, cpu };
}

const FLOODS = 2;
const FLOOD_SECONDS = 4;

/**
 * A quiet container's log line delays (ms) while FLOODS containers print as
 * fast as a quarter CPU each lets them, and the flood's CRI log MB/s.
 */
async function quietDelayRound(rt: Runtime, image: string): Promise<{ delays: number[]; floodMBps: number }> {
  const quarterCpu = { resources: { cpuPeriod: 100_000n, cpuQuota: 25_000n } };
  const floods = await Promise.all(Array.from({ length: FLOODS }, () => startContainer(rt, image, ['yes', LINE], quarterCpu)));
  const quiet = await startContainer(rt, image, uptimePrinter(20));
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, FLOOD_SECONDS * 1000));
  const bootNs = bootWallNs();
  const all = [...floods, quiet];
  await Promise.all(all.map((c) => rt.client.runtime.stopContainer({ containerId: c.id, timeout: 0n })));
  const seconds = (performance.now() - t0) / 1000;
  const floodBytes = floods.reduce((n, c) => n + statSync(c.log).size, 0);
  const delays = uptimeLineDelaysMs(quiet.log, bootNs);
  await Promise.all(all.map((c) => rt.client.runtime.removeContainer({ containerId: c.id })));
  for (const c of all) rmSync(c.log, { force: true });
  return { delays, floodMBps: floodBytes / 1e6 / seconds };
}

function containerdPid(address: string): number {
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (path.basename(argv[0] ?? '') === 'containerd' && argv.some((a) => a.includes(path.dirname(address)))) return Number(p);
    } catch {
      // process went away
    }
  }
  throw new Error(`no containerd process found for ${address}`);
}

export const execLogs: Scenario = {
  name: 'exec-logs',
  async run({ harness, adapter, criPlugin }: BenchContext): Promise<BenchRow[]> {
    const image = harness.images.busybox;
    const ours = await setUp('adapter', adapter.client, image, adapter.process.pid!);
    const theirs = await setUp('plugin', criPlugin, image, containerdPid(harness.containerd.address));
    const rows: BenchRow[] = [];
    try {
      const [a, b] = await Promise.all([startContainer(ours, image, ['sleep', '3600']), startContainer(theirs, image, ['sleep', '3600'])]);
      const exec = await compare(
        () => ours.client.runtime.execSync({ containerId: a.id, cmd: ['true'], timeout: 10n }),
        () => theirs.client.runtime.execSync({ containerId: b.id, cmd: ['true'], timeout: 10n }),
        { rounds: 5, perRound: 6, warmup: 3 },
      );
      rows.push({ scenario: 'ExecSync (true)', subject: 'cri-adapter', reference: "containerd's CRI plugin", subjectSample: exec.subject, referenceSample: exec.reference });

      for (const containers of [1, PARALLEL]) {
        const res: Record<string, Array<{ ms: number; bytes: number; cpu: number }>> = { adapter: [], plugin: [] };
        for (let i = 0; i < ROUNDS; i++) {
          res.adapter!.push(await logRound(ours, image, containers));
          res.plugin!.push(await logRound(theirs, image, containers));
        }
        const rate = (r: { ms: number; bytes: number }[]) => {
          const mbps = r.map((x) => x.bytes / 1e6 / (x.ms / 1000)).sort((p, q) => p - q);
          return mbps[Math.floor(mbps.length / 2)]!.toFixed(0);
        };
        const cpuShare = (r: { ms: number; cpu: number }[]) => {
          const share = r.map((x) => (100 * x.cpu) / (x.ms / 1000)).sort((p, q) => p - q);
          return share[Math.floor(share.length / 2)]!.toFixed(0);
        };
        rows.push({
          scenario: `Log ${LOG_MIB} MiB x${containers} container(s)`,
          subject: 'cri-adapter',
          reference: "containerd's CRI plugin",
          subjectSample: summarize(res.adapter!.map((x) => x.ms)),
          referenceSample: summarize(res.plugin!.map((x) => x.ms)),
          note: `CRI log MB/s: adapter ${rate(res.adapter!)}, plugin ${rate(res.plugin!)}; CPU % of one core: adapter process ${cpuShare(res.adapter!)}, containerd ${cpuShare(res.plugin!)}`,
        });
      }

      const quiet: Record<string, { delays: number[]; mbps: number[] }> = { adapter: { delays: [], mbps: [] }, plugin: { delays: [], mbps: [] } };
      for (let i = 0; i < 2; i++) {
        for (const rt of [ours, theirs]) {
          const r = await quietDelayRound(rt, image);
          quiet[rt.name]!.delays.push(...r.delays);
          quiet[rt.name]!.mbps.push(r.floodMBps);
        }
      }
      const mean = (xs: number[]) => (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(0);
      rows.push({
        scenario: `Quiet container's log line delay next to ${FLOODS} floods`,
        subject: 'cri-adapter',
        reference: "containerd's CRI plugin",
        subjectSample: summarize(quiet.adapter!.delays),
        referenceSample: summarize(quiet.plugin!.delays),
        note: `ms from printing a line to the runtime's timestamp on it (10 ms resolution); flood CRI log MB/s: adapter ${mean(quiet.adapter!.mbps)}, plugin ${mean(quiet.plugin!.mbps)}`,
      });
    } finally {
      await ours.client.runtime.removePodSandbox({ podSandboxId: ours.pod }).catch(() => undefined);
      await theirs.client.runtime.stopPodSandbox({ podSandboxId: theirs.pod }).catch(() => undefined);
      await theirs.client.runtime.removePodSandbox({ podSandboxId: theirs.pod }).catch(() => undefined);
      for (const rt of [ours, theirs]) rmSync(rt.logDir, { recursive: true, force: true });
    }
    return rows;
  },
};
