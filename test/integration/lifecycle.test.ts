/**
 * Lifecycle under stress, through the CRI socket of the built daemon, on a
 * containerd of this file's own (so it can be killed with SIGKILL and
 * started again on the same state): long and overlapping stops, containerd
 * dying in the middle of RunPodSandbox, CreateContainer and a container's
 * exit, the adapter dying in the middle of a stop and of RunPodSandbox, and
 * a short soak. After each, nothing may stay behind: containerd's
 * containers, tasks, snapshots and leases in the namespace, the adapter's
 * unfinished-work markers, pod directories and mounts under its state dir,
 * network namespaces and CNI IP allocations of the pods involved.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { credentials, Metadata } from '@grpc/grpc-js';
import {
  ContainerState,
  ContainerStatus,
  CreateContainerRequest,
  DeepPartial,
  ContainerConfig,
  ListContainersRequest,
  ListPodSandboxRequest,
  PodSandboxConfig,
  PullImageRequest,
  RunPodSandboxRequest,
  RuntimeServiceClient,
  StopContainerRequest,
} from '../../src/gen/runtime/v1/api';
import { TMP_PREFIX } from '../harness';
import type { CniNetwork } from '../harness/cni';
import { Containerd, startContainerd } from '../harness/containerd';
import { loadHarnessEnv } from '../harness/env';
import { AdapterProcess, startAdapter } from '../support/adapter-process';
import type { CriClient } from '../support/cri-client';
import { mountsUnder, pidAlive, sleep, waitFor } from '../harness/util';
import { cycle, formatSamples, ipamHolders, netnsOf, OBJECT_FIELDS, sample, SoakSample, SoakTarget } from '../support/soak';

const execFileP = promisify(execFile);
const h = loadHarnessEnv();
const NS = 'cri-adapter-it-lifecycle';
const HEX64 = /[0-9a-f]{64}/g;

let tmpDir: string;
let containerd: Containerd;
let adapter: AdapterProcess;
let client: CriClient;
let adapterDir: string;
let logDir: string;
const ipamDir = path.join(h.tmpDir, 'cni', 'ipam', h.cni.networkName);
/** Every sandbox ID this file's pods may have had, for the node-wide checks (netns, IPAM). */
const seenIds = new Set<string>();

const startOwnContainerd = () =>
  startContainerd({ tmpDir, criPlugin: false, registryHost: h.registry.host, sandboxImage: h.images.pause, cni: h.cni as unknown as CniNetwork });

async function launchAdapter(): Promise<void> {
  adapter = await startAdapter({
    containerdAddress: containerd.address,
    namespace: NS,
    cniConfDir: h.cni.confDir,
    dir: adapterDir,
    extraArgs: [
      '--registry-config-path', h.registry.configPath,
      '--sandbox-image', h.images.pause,
      '--runtimes', JSON.stringify({ runc: { type: 'io.containerd.runc.v2', root: path.join(h.tmpDir, 'runc-lifecycle') } }),
    ],
  });
  client = adapter.client;
}

/** SIGKILL containerd and wait until the process is really gone (field notes: it may linger a moment). */
async function killContainerd(): Promise<void> {
  process.kill(containerd.pid, 'SIGKILL');
  await waitFor('containerd to die', () => !pidAlive(containerd.pid));
}

async function restartContainerd(): Promise<void> {
  containerd = await startOwnContainerd();
  await waitFor('RuntimeReady after containerd restart', async () => {
    const s = await client.runtime.status({ verbose: false }).catch(() => undefined);
    return s?.status?.conditions.find((c) => c.type === 'RuntimeReady')?.status ? true : undefined;
  }, { timeoutMs: 30_000 });
}

let seq = 0;
function podConfig(name = `p${seq++}`): PodSandboxConfig {
  return PodSandboxConfig.fromPartial({
    metadata: { name, namespace: 'lifecycle', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    logDirectory: logDir,
    linux: {},
  });
}

async function runPod(config = podConfig()): Promise<string> {
  const { podSandboxId } = await client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
  seenIds.add(podSandboxId);
  return podSandboxId;
}

async function createIn(pod: string, more: DeepPartial<ContainerConfig> = {}): Promise<string> {
  const name = `c${seq++}`;
  const { containerId } = await client.runtime.createContainer(
    CreateContainerRequest.fromPartial({
      podSandboxId: pod,
      sandboxConfig: podConfig(),
      config: { metadata: { name }, image: { image: h.images.busybox }, logPath: `${name}.log`, linux: {}, ...more },
    }),
  );
  return containerId;
}

async function status(id: string): Promise<ContainerStatus> {
  return (await client.runtime.containerStatus({ containerId: id, verbose: false })).status!;
}

async function waitExited(id: string, timeoutMs = 30_000): Promise<ContainerStatus> {
  return waitFor(`container ${id.slice(0, 12)} to exit`, async () => {
    const s = await status(id);
    return s.state === ContainerState.CONTAINER_EXITED ? s : undefined;
  }, { timeoutMs });
}

/** A PID 1 that ignores SIGTERM (explicitly, though PID 1 has no default action for it anyway). */
const TERM_IGNORING = { command: ['sh', '-c', 'trap "" TERM; while :; do sleep 1; done'] };

async function ctr(...args: string[]): Promise<string[]> {
  const { stdout } = await execFileP('ctr', ['--address', containerd.address, '-n', NS, ...args]);
  return stdout.split('\n').filter((l) => l.trim() !== '');
}

/** IDs the CRI reports, pods and containers. */
async function criIds(): Promise<Set<string>> {
  const pods = (await client.runtime.listPodSandbox(ListPodSandboxRequest.fromPartial({}))).items.map((p) => p.id);
  const ctrs = (await client.runtime.listContainers(ListContainersRequest.fromPartial({}))).containers.map((c) => c.id);
  return new Set([...pods, ...ctrs]);
}

function markers(): string[] {
  const dir = path.join(adapterDir, 'root', 'pending');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((kind) => readdirSync(path.join(dir, kind)).map((f) => f.replace(/\.json$/, '')));
}

/**
 * What exists that the CRI does not account for. Empty when nothing leaked:
 * every containerd container, task and active snapshot belongs to a listed
 * pod or container, no lease or marker is left, and no pod directory, mount,
 * network namespace or IP allocation outlives its pod.
 */
async function leftovers(): Promise<string[]> {
  const known = await criIds();
  const out: string[] = [];
  for (const id of await ctr('containers', 'ls', '-q')) if (!known.has(id)) out.push(`container ${id}`);
  for (const id of await ctr('tasks', 'ls', '-q')) if (!known.has(id.split(/\s+/)[0]!)) out.push(`task ${id}`);
  for (const row of (await ctr('snapshots', 'ls')).slice(1)) {
    const key = row.split(/\s+/)[0]!;
    if (/\bActive\s*$/.test(row) && !known.has(key)) out.push(`snapshot ${key}`);
  }
  for (const id of await ctr('leases', 'ls', '-q')) out.push(`lease ${id}`);
  for (const id of markers()) out.push(`marker ${id}`);
  const podDirs = path.join(adapterDir, 'state', 'sandboxes');
  for (const id of existsSync(podDirs) ? readdirSync(podDirs) : []) if (!known.has(id)) out.push(`pod dir ${id}`);
  for (const m of mountsUnder(adapterDir)) if (![...known].some((id) => m.includes(id))) out.push(`mount ${m}`);
  const strangers = [...seenIds].filter((id) => !known.has(id));
  for (const p of netnsOf(strangers)) out.push(`netns ${p}`);
  const holders = new Set(ipamHolders(ipamDir));
  for (const id of strangers) if (holders.has(id)) out.push(`ip of ${id}`);
  return out;
}

/** Leftovers go away by themselves (the reconcile pass after a gap, or at start); wait for that. */
async function expectNothingLeft(): Promise<void> {
  let last: string[] = [];
  await waitFor('nothing left behind', async () => {
    last = await leftovers();
    return last.length === 0 ? true : undefined;
  }, { timeoutMs: 40_000 }).catch(() => undefined);
  expect(last).toEqual([]);
}

/** Removes every pod (and so every container) the CRI lists. */
async function removeAllPods(): Promise<void> {
  for (const p of (await client.runtime.listPodSandbox(ListPodSandboxRequest.fromPartial({}))).items) {
    await client.runtime.stopPodSandbox({ podSandboxId: p.id });
    await client.runtime.removePodSandbox({ podSandboxId: p.id });
  }
}

/** Every 64-hex ID the adapter logged so far (the IDs of calls that failed are logged with them). */
function loggedIds(): string[] {
  return adapter.logs().match(HEX64) ?? [];
}

beforeAll(async () => {
  tmpDir = mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}lifecycle-`));
  adapterDir = path.join(tmpDir, 'adapter');
  logDir = path.join(tmpDir, 'logs');
  mkdirSync(adapterDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  containerd = await startOwnContainerd();
  await launchAdapter();
  await client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
  await client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.pause } }));
}, 120_000);

afterAll(async () => {
  await removeAllPods().catch(() => undefined);
  await adapter?.stop();
  await containerd?.stop();
  rmSync(tmpDir, { recursive: true, force: true });
}, 120_000);

afterEach(async () => {
  await removeAllPods().catch(() => undefined);
}, 60_000);

describe('long stops', () => {
  test('a stop whose caller left holds nothing: StopContainer(0) from another client takes effect at once', async () => {
    const pod = await runPod();
    const c = await createIn(pod, TERM_IGNORING);
    await client.runtime.startContainer({ containerId: c });
    const other = new RuntimeServiceClient(`unix://${adapter.socket}`, credentials.createInsecure());
    try {
      /** StopContainer(timeout) from the other client, which gives up (cancels) after `ms`. */
      const stopAndLeave = (timeout: bigint, ms: number) =>
        new Promise<number>((resolve) => {
          const call = other.stopContainer(StopContainerRequest.fromPartial({ containerId: c, timeout }), new Metadata(), {}, (err) => resolve(err?.code ?? 0));
          setTimeout(() => call.cancel(), ms);
        });
      // The largest grace the proto allows: no timer overflow (Node fires a timer past 2^31-1 ms at once).
      expect(await stopAndLeave(2n ** 63n - 1n, 1000)).toBe(1 /* CANCELLED */);
      await sleep(500);
      expect((await status(c)).state).toBe(ContainerState.CONTAINER_RUNNING);
      expect(await stopAndLeave(3600n, 1000)).toBe(1);

      const t0 = performance.now();
      await client.runtime.stopContainer({ containerId: c, timeout: 0n });
      expect(performance.now() - t0).toBeLessThan(2000);
      const s = await status(c);
      expect(s.state).toBe(ContainerState.CONTAINER_EXITED);
      expect(s.exitCode).toBe(137);
      await client.runtime.removeContainer({ containerId: c });
      await client.runtime.stopPodSandbox({ podSandboxId: pod });
      await client.runtime.removePodSandbox({ podSandboxId: pod });
      expect((await criIds()).has(pod)).toBe(false);
    } finally {
      other.close();
    }
  }, 60_000);

  test('while a long stop still waits (its caller connected), StopPodSandbox and RemovePodSandbox take effect at once; the waiting stop then returns OK', async () => {
    const pod = await runPod();
    const c = await createIn(pod, TERM_IGNORING);
    await client.runtime.startContainer({ containerId: c });
    const other = new RuntimeServiceClient(`unix://${adapter.socket}`, credentials.createInsecure());
    try {
      // The kubelet's deadline is the grace period plus a margin: a grace of 20 days here. (Past 2^31-1 ms,
      // 24.8 days, grpc-js's server itself wraps the grpc-timeout header and fails the call at once.)
      const deadline = new Date(Date.now() + 20 * 24 * 3600 * 1000);
      let settled: { code: number; at: number } | undefined;
      other.stopContainer(StopContainerRequest.fromPartial({ containerId: c, timeout: 2n ** 63n - 1n }), new Metadata(), { deadline }, (err) => {
        settled = { code: err?.code ?? 0, at: performance.now() };
      });
      await sleep(1000);
      expect(settled).toBeUndefined();
      expect((await status(c)).state).toBe(ContainerState.CONTAINER_RUNNING);

      const t0 = performance.now();
      await client.runtime.stopPodSandbox({ podSandboxId: pod });
      expect(performance.now() - t0).toBeLessThan(2000);
      const s = await status(c);
      expect({ state: s.state, exitCode: s.exitCode }).toEqual({ state: ContainerState.CONTAINER_EXITED, exitCode: 137 });
      await client.runtime.removePodSandbox({ podSandboxId: pod });
      expect((await criIds()).has(pod)).toBe(false);
      // The first stop's wait ended with the container's exit, successfully.
      await waitFor('the long stop to return', () => settled, { timeoutMs: 5000 });
      expect(settled!.code).toBe(0);
    } finally {
      other.close();
    }
  }, 60_000);

  test('ExecSync with the largest timeout the proto allows runs the command instead of timing out at once', async () => {
    const pod = await runPod();
    const c = await createIn(pod, { command: ['sleep', '3600'] });
    await client.runtime.startContainer({ containerId: c });
    const r = await client.runtime.execSync({ containerId: c, cmd: ['sh', '-c', 'sleep 1; echo done'], timeout: 2n ** 63n - 1n });
    expect({ exitCode: r.exitCode, stdout: r.stdout.toString() }).toEqual({ exitCode: 0, stdout: 'done\n' });
  }, 60_000);

  test('the grace period of a stop whose caller left still ends in SIGKILL', async () => {
    const pod = await runPod();
    const c = await createIn(pod, TERM_IGNORING);
    await client.runtime.startContainer({ containerId: c });
    const stoppedAt = Date.now();
    // A stop with a 2 s grace whose caller leaves after 300 ms.
    await expect(
      new Promise<number>((resolve) => {
        const other = new RuntimeServiceClient(`unix://${adapter.socket}`, credentials.createInsecure());
        const call = other.stopContainer(StopContainerRequest.fromPartial({ containerId: c, timeout: 2n }), new Metadata(), {}, (err) => {
          other.close();
          resolve(err?.code ?? 0);
        });
        setTimeout(() => call.cancel(), 300);
      }),
    ).resolves.toBe(1 /* CANCELLED */);
    expect((await status(c)).state).toBe(ContainerState.CONTAINER_RUNNING);
    const s = await waitExited(c, 10_000);
    expect(s.exitCode).toBe(137);
    // Killed after the grace (2 s from the stop), not at once.
    expect(Number(s.finishedAt / 1_000_000n) - stoppedAt).toBeGreaterThan(1500);
  }, 60_000);
});

describe('containerd killed with SIGKILL and started again', () => {
  test('during RunPodSandbox: nothing stays behind, and pods that made it are whole', async () => {
    const calls: Promise<string | Error>[] = [];
    for (let i = 0; i < 8; i++) {
      calls.push(sleep(i * 60).then(() => runPod().catch((e: Error) => e)));
    }
    await sleep(250);
    await killContainerd();
    await sleep(1000);
    await restartContainerd();
    const results = await Promise.all(calls);
    for (const id of loggedIds()) seenIds.add(id);
    // The kill did land among the calls: some failed (containerd was gone under them).
    expect(results.some((r) => r instanceof Error)).toBe(true);
    await expectNothingLeft();
    // Pods reported created are READY and usable after the restart.
    const made = results.filter((r): r is string => typeof r === 'string');
    for (const id of made) {
      const c = await createIn(id, { command: ['true'] });
      await client.runtime.startContainer({ containerId: c });
      expect((await waitExited(c)).exitCode).toBe(0);
    }
    await removeAllPods();
    await expectNothingLeft();
  }, 180_000);

  test('during CreateContainer: nothing stays behind', async () => {
    const pod = await runPod();
    const calls: Promise<string | Error>[] = [];
    for (let i = 0; i < 8; i++) calls.push(sleep(i * 15).then(() => createIn(pod, { command: ['true'] }).catch((e: Error) => e)));
    await sleep(40);
    await killContainerd();
    await sleep(1000);
    await restartContainerd();
    const results = await Promise.all(calls);
    expect(results.some((r) => r instanceof Error)).toBe(true);
    await expectNothingLeft();
    await removeAllPods();
    await expectNothingLeft();
  }, 180_000);

  test('while a container exits: the exit is recorded with its code', async () => {
    const pod = await runPod();
    const exiter = await createIn(pod, { command: ['sh', '-c', 'sleep 1; exit 3'] });
    const runner = await createIn(pod, { command: ['sleep', '3600'] });
    await client.runtime.startContainer({ containerId: exiter });
    await client.runtime.startContainer({ containerId: runner });
    await killContainerd();
    await sleep(2500);
    await restartContainerd();
    const e = await waitExited(exiter, 20_000);
    expect(e.exitCode).toBe(3);
    expect(e.reason).toBe('Error');
    expect((await status(runner)).state).toBe(ContainerState.CONTAINER_RUNNING);
    await client.runtime.stopContainer({ containerId: runner, timeout: 0n });
    expect((await status(runner)).exitCode).toBe(137);
    await removeAllPods();
    await expectNothingLeft();
  }, 120_000);
});

/** The adapter's command helper processes (host/commands.ts): children of `pid` running command-helper.js. */
function commandHelpersOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === pid && pidAlive(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('command-helper.js');
      } catch {
        return false;
      }
    });
}

describe('namespaces made ahead (cni.netnsPoolSize 2)', () => {
  const poolDir = () => path.join(adapterDir, 'state', 'netns-pool');
  const pooledIds = () => (existsSync(poolDir()) ? readdirSync(poolDir()) : []);

  test('a pod gets one with its sandbox ID, the pool refills, and a crashed adapter\'s pool is removed at the next start', async () => {
    await waitFor('the pool filled', () => pooledIds().length === 2 && netnsOf(pooledIds()).length === 2);
    const ahead = pooledIds();
    const pod = await runPod();
    // The pod is one of them: its ID was chosen with the namespace, which it now owns.
    expect(ahead).toContain(pod);
    expect(netnsOf([pod])).toHaveLength(1);
    await waitFor('the pool refilled', () => pooledIds().length === 2 && !pooledIds().includes(pod));
    const left = pooledIds();
    await adapter.kill();
    expect(netnsOf(left)).toHaveLength(2);
    await launchAdapter();
    await waitFor('the old pool removed', () => netnsOf(left).length === 0);
    expect(netnsOf([pod])).toHaveLength(1);
    await removeAllPods();
    expect(netnsOf([pod])).toHaveLength(0);
    await expectNothingLeft();
  }, 60_000);
});

describe('the command helper', () => {
  test('runs the pod\'s host commands, is started again when it dies, and goes when the adapter does', async () => {
    const pod = await runPod();
    const adapterPid = adapter.process.pid!;
    const [first] = commandHelpersOf(adapterPid);
    // RunPodSandbox's namespace, /dev/shm and CNI plugins went through it.
    expect(first).toBeDefined();
    process.kill(first!, 'SIGKILL');
    await waitFor('the helper gone', async () => !pidAlive(first!));
    // The next pod's commands start a new one; nothing else notices.
    const second = await runPod();
    expect((await client.runtime.podSandboxStatus({ podSandboxId: second, verbose: false })).status?.network?.ip).toMatch(/^\d+\./);
    const now = commandHelpersOf(adapterPid);
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(first);
    await client.runtime.stopPodSandbox({ podSandboxId: pod });
    await adapter.kill();
    await waitFor('the helper exits with the adapter', async () => !pidAlive(now[0]!), { timeoutMs: 5000 });
    await launchAdapter();
    await removeAllPods();
    await expectNothingLeft();
  }, 60_000);
});

describe('the adapter killed with SIGKILL', () => {
  test('in the middle of StopContainer: the exit is 137 after the restart', async () => {
    const pod = await runPod();
    const delays = [0, 10, 30, 60, 120];
    const ids: string[] = [];
    for (const _ of delays) {
      const c = await createIn(pod, { command: ['sleep', '3600'] });
      await client.runtime.startContainer({ containerId: c });
      ids.push(c);
    }
    for (const [i, d] of delays.entries()) {
      void client.runtime.stopContainer({ containerId: ids[i]!, timeout: 0n }).catch(() => undefined);
      await sleep(d);
      await adapter.kill();
      await launchAdapter();
      let s = await status(ids[i]!);
      // Killed before the signal went out: it still runs, and a stop now ends it.
      if (s.state === ContainerState.CONTAINER_RUNNING) {
        await client.runtime.stopContainer({ containerId: ids[i]!, timeout: 0n });
        s = await status(ids[i]!);
      }
      expect({ delay: d, state: s.state, exitCode: s.exitCode, reason: s.reason }).toEqual({
        delay: d,
        state: ContainerState.CONTAINER_EXITED,
        exitCode: 137,
        reason: 'Error',
      });
    }
    await removeAllPods();
    await expectNothingLeft();
  }, 180_000);

  test('during a stop\'s grace period: the restarted adapter still sends SIGKILL when it ends', async () => {
    const pod = await runPod();
    const c = await createIn(pod, TERM_IGNORING);
    await client.runtime.startContainer({ containerId: c });
    const stoppedAt = Date.now();
    void client.runtime.stopContainer({ containerId: c, timeout: 4n }).catch(() => undefined);
    await sleep(500);
    await adapter.kill();
    await launchAdapter();
    // The container ignores SIGTERM, so only the re-armed deadline can end it, and not before 4 s.
    expect((await status(c)).state).toBe(ContainerState.CONTAINER_RUNNING);
    const s = await waitExited(c, 15_000);
    expect(s.exitCode).toBe(137);
    expect(Number(s.finishedAt / 1_000_000n) - stoppedAt).toBeGreaterThan(3500);
    await removeAllPods();
    await expectNothingLeft();
  }, 60_000);

  test('in the middle of RunPodSandbox and CreateContainer: mounts, files, netns, IPs, snapshots and leases are released at start', async () => {
    const pod = await runPod();
    for (const killAfter of [80, 200, 400]) {
      const calls = [];
      for (let i = 0; i < 4; i++) {
        calls.push(sleep(i * 40).then(() => runPod()).catch(() => undefined));
        calls.push(sleep(i * 30).then(() => createIn(pod, { command: ['true'] })).catch(() => undefined));
      }
      await sleep(killAfter);
      await adapter.kill();
      for (const id of markers()) seenIds.add(id);
      await Promise.all(calls);
      await launchAdapter();
      await expectNothingLeft();
    }
    await removeAllPods();
    await expectNothingLeft();
  }, 240_000);
});

describe('soak (CI size)', () => {
  test('30 pod cycles: containerd objects, mounts, netns, IPs and fds do not grow', async () => {
    const target: SoakTarget = {
      client,
      adapterPid: adapter.process.pid!,
      adapterDir,
      containerdAddress: containerd.address,
      namespace: NS,
      ipamDir,
      image: h.images.busybox,
    };
    const soakPods = new Set<string>();
    // Two warm-up cycles: first use of the exec path, FIFO helper and CNI plugins opens what stays open.
    for (let i = 0; i < 2; i++) await cycle(target, -1 - i, soakPods, logDir);
    const samples: SoakSample[] = [await sample(target, 0, soakPods)];
    for (let i = 1; i <= 30; i++) {
      await cycle(target, i, soakPods, logDir);
      if (i % 10 === 0) samples.push(await sample(target, i, soakPods));
    }
    process.stderr.write(`soak samples:\n${formatSamples(samples)}\n`);
    const first = samples[0]!;
    const last = samples[samples.length - 1]!;
    for (const f of OBJECT_FIELDS) expect({ [f]: last[f] }).toEqual({ [f]: first[f] });
    // A few fds may come and go (gRPC connections, a pending timer's pipe); 30 pods' worth may not.
    expect(last.fds).toBeLessThanOrEqual(first.fds + 5);
    for (const id of soakPods) seenIds.add(id);
    await expectNothingLeft();
  }, 300_000);
});
