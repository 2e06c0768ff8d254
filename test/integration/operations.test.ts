/**
 * Operating the daemon: the Prometheus endpoint scraped over HTTP around a
 * real pod cycle through the CRI socket (the counters move by what the
 * cycle did), and live reload: a SIGHUP after editing the config file
 * changes the log level and the registry hosts directory of the running
 * daemon, refuses keys that need a restart, and keeps the running
 * configuration when the new file is invalid.
 */
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import {
  ContainerConfig,
  ContainerState,
  CreateContainerRequest,
  PodSandboxConfig,
  PullImageRequest,
  RunPodSandboxRequest,
} from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import { waitFor } from '../harness/util';
import { AdapterProcess, startAdapter } from '../support/adapter-process';
import { CriCallError } from '../support/cri-client';
import { startHarnessAdapter } from '../support/harness-adapter';
import { getMetrics as get, metricsPort } from '../support/metrics-endpoint';

const h = loadHarnessEnv();

/** Sample values of one scrape, keyed `name{labels}` exactly as printed. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

function delta(before: Map<string, number>, after: Map<string, number>, key: string): number {
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}

function sumMatching(m: Map<string, number>, re: RegExp): number {
  let n = 0;
  for (const [k, v] of m) if (re.test(k)) n += v;
  return n;
}

describe('metrics endpoint', () => {
  let adapter: AdapterProcess;
  let port: number;

  beforeAll(async () => {
    adapter = await startHarnessAdapter(h, { namespace: 'cri-adapter-it-metrics', extraArgs: ['--metrics-address', '127.0.0.1:0'] });
    port = metricsPort(adapter.logs());
  });
  afterAll(async () => {
    await adapter.stop();
  });

  it('serves the text format at /metrics only', async () => {
    const res = await get(port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    // prom-client's process metrics and event-loop lag are there.
    expect(res.body).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(res.body).toMatch(/^process_open_fds \d+/m);
    expect(res.body).toMatch(/^nodejs_eventloop_lag_seconds [\d.e-]+/m);
    expect((await get(port, '/')).status).toBe(404);
  });

  it('counts a pod cycle: CRI calls, containerd calls, CNI runs, a pull, an exit and log bytes', async () => {
    const client = adapter.client;
    // The pod's pause image first, so the cycle's only pull is the PullImage below.
    await client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.pause } }));
    const before = parse((await get(port, '/metrics')).body);

    await client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
    const config = PodSandboxConfig.fromPartial({ metadata: { name: 'metrics-pod', namespace: 'ops-test', uid: 'uid-metrics-pod' }, linux: {}, logDirectory: mkdtempSync(path.join(h.tmpDir, 'metrics-logs-')) });
    const { podSandboxId } = await client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
    const { containerId } = await client.runtime.createContainer(
      CreateContainerRequest.fromPartial({
        podSandboxId,
        sandboxConfig: config,
        config: ContainerConfig.fromPartial({
          metadata: { name: 'hello' },
          image: { image: h.images.busybox },
          command: ['/bin/sh', '-c', 'echo hello-metrics'],
          logPath: 'hello.log',
        }),
      }),
    );
    await client.runtime.startContainer({ containerId });
    await waitFor('the container to exit', async () => {
      const s = await client.runtime.containerStatus({ containerId, verbose: false });
      return s.status?.state === ContainerState.CONTAINER_EXITED ? true : undefined;
    });
    const missing = await client.runtime.containerStatus({ containerId: 'no-such-container', verbose: false }).catch((e: unknown) => e);
    expect((missing as CriCallError).code).toBe(Code.NOT_FOUND);
    await client.runtime.stopPodSandbox({ podSandboxId });
    await client.runtime.removePodSandbox({ podSandboxId });

    const text = (await get(port, '/metrics')).body;
    const after = parse(text);
    const op = (name: string) => delta(before, after, `cri_adapter_operations_total{operation="${name}"}`);
    expect(op('PullImage')).toBe(1);
    expect(op('RunPodSandbox')).toBe(1);
    expect(op('CreateContainer')).toBe(1);
    expect(op('StartContainer')).toBe(1);
    expect(op('StopPodSandbox')).toBe(1);
    expect(op('RemovePodSandbox')).toBe(1);
    expect(op('ContainerStatus')).toBeGreaterThanOrEqual(2);
    expect(delta(before, after, 'cri_adapter_operation_errors_total{operation="ContainerStatus",code="NOT_FOUND"}')).toBe(1);
    expect(delta(before, after, 'cri_adapter_operation_errors_total{operation="RunPodSandbox",code="NOT_FOUND"}')).toBe(0);
    // The histogram saw every call it counted.
    expect(delta(before, after, 'cri_adapter_operation_duration_seconds_count{operation="RunPodSandbox"}')).toBe(1);
    expect(delta(before, after, 'cri_adapter_operation_duration_seconds_bucket{le="60",operation="RunPodSandbox"}')).toBe(1);

    // Two tasks (the pause container and ours) were created and started through containerd.
    expect(delta(before, after, 'cri_adapter_containerd_operations_total{service="Tasks",method="Create"}')).toBe(2);
    expect(delta(before, after, 'cri_adapter_containerd_operations_total{service="Tasks",method="Start"}')).toBe(2);
    expect(delta(before, after, 'cri_adapter_containerd_operation_duration_seconds_count{service="Tasks",method="Create"}')).toBe(2);

    // The harness's network is bridge + portmap + loopback: one ADD each, then one DEL each.
    for (const plugin of ['bridge', 'portmap', 'loopback']) {
      expect(delta(before, after, `cri_adapter_cni_plugin_duration_seconds_count{plugin="${plugin}",command="ADD"}`)).toBe(1);
      expect(delta(before, after, `cri_adapter_cni_plugin_duration_seconds_count{plugin="${plugin}",command="DEL"}`)).toBe(1);
    }
    expect(sumMatching(after, /^cri_adapter_cni_plugin_failures_total/) - sumMatching(before, /^cri_adapter_cni_plugin_failures_total/)).toBe(0);

    expect(delta(before, after, 'cri_adapter_image_pull_duration_seconds_count')).toBe(1);
    expect(delta(before, after, 'cri_adapter_container_exits_total')).toBe(1);
    expect(delta(before, after, 'cri_adapter_container_oom_kills_total')).toBe(0);
    // "<timestamp> stdout F hello-metrics\n" at least; RFC 3339 with nanoseconds drops trailing zeros,
    // so the timestamp and its space take 21 ("...:SSZ ") to 31 bytes.
    expect(delta(before, after, 'cri_adapter_log_bytes_written_total')).toBeGreaterThanOrEqual('stdout F hello-metrics\n'.length + 21);

    // Bounded labels: no ID of the objects just made is a label value.
    expect(text).not.toContain(podSandboxId);
    expect(text).not.toContain(containerId);
  });

  it('counts a failed pull by reason', async () => {
    const before = parse((await get(port, '/metrics')).body);
    const err = await adapter.client.image
      .pullImage(PullImageRequest.fromPartial({ image: { image: `${h.registry.host}/cri-adapter-test/no-such-image:1` } }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriCallError);
    const after = parse((await get(port, '/metrics')).body);
    expect(delta(before, after, 'cri_adapter_image_pull_failures_total{reason="NotFound"}')).toBe(1);
    expect(delta(before, after, 'cri_adapter_operation_errors_total{operation="PullImage",code="NOT_FOUND"}')).toBe(1);
  });
});

it('has no endpoint unless metrics.address is set', async () => {
  const adapter = await startHarnessAdapter(h, { namespace: 'cri-adapter-it-metrics-off' });
  try {
    expect(adapter.logs()).not.toContain('serving metrics');
  } finally {
    await adapter.stop();
  }
});

describe('live reload (SIGHUP)', () => {
  let adapter: AdapterProcess;
  let configFile: string;
  let emptyHosts: string;
  const base = () => ({
    logLevel: 'warn',
    sandboxImage: h.images.pause,
    registry: { configPath: emptyHosts },
  });

  function writeConfig(doc: unknown): void {
    writeFileSync(configFile, typeof doc === 'string' ? doc : JSON.stringify(doc));
  }

  async function hup(marker: string): Promise<void> {
    const seen = adapter.logs().split(marker).length;
    adapter.process.kill('SIGHUP');
    await waitFor(`"${marker}" in the daemon's log`, () => (adapter.logs().split(marker).length > seen ? true : undefined));
  }

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(h.tmpDir, 'reload-'));
    configFile = path.join(dir, 'config.json');
    // A hosts directory with nothing for the local registry: pulls go to its default upstream (https), which fails.
    emptyHosts = path.join(dir, 'certs.d');
    mkdirSync(emptyHosts);
    writeConfig(base());
    adapter = await startAdapter({
      containerdAddress: h.containerd.address,
      namespace: 'cri-adapter-it-reload',
      cniConfDir: h.cni.confDir,
      fileLogLevel: true,
      extraArgs: ['--config', configFile, '--runtimes', JSON.stringify({ runc: { type: 'io.containerd.runc.v2', root: path.join(h.tmpDir, 'runc-adapter') } })],
    });
  });
  afterAll(async () => {
    await adapter.stop();
  });

  it('applies logLevel and registry.configPath, and the daemon behaves accordingly', async () => {
    const pull = () => adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
    const failed = await pull().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(CriCallError);
    await adapter.client.runtime.version({ version: '' });
    expect(adapter.logs()).not.toContain('"CRI call"');

    writeConfig({ ...base(), logLevel: 'debug', registry: { configPath: h.registry.configPath } });
    await hup('"configuration key applied"');
    await waitFor('both keys applied', () => (adapter.logs().match(/"configuration key applied"/g)?.length === 2 ? true : undefined));
    expect(adapter.logs()).toMatch(/"key":"logLevel".*"message":"configuration key applied"|"message":"configuration key applied".*"key":"logLevel"/);
    expect(adapter.logs()).toContain('"key":"registry.configPath"');

    // The hosts.toml directory now maps the registry to plain http: the same pull succeeds.
    const { imageRef } = await pull();
    expect(imageRef).toMatch(/^sha256:/);
    // And every call is logged at debug level now.
    await adapter.client.runtime.version({ version: '' });
    await waitFor('a debug line for Version', () => (/"message":"CRI call".*"rpc":"Version"|"rpc":"Version".*"message":"CRI call"/.test(adapter.logs()) ? true : undefined));
  });

  it('refuses keys that need a restart, naming them, and applies nothing else', async () => {
    writeConfig({ ...base(), logLevel: 'debug', registry: { configPath: h.registry.configPath }, snapshotter: 'native' });
    await hup('"configuration keys changed that need a restart; not applied"');
    const line = adapter.logs().split('\n').reverse().find((l) => l.includes('need a restart'))!;
    expect(JSON.parse(line).keys).toEqual(['snapshotter']);
  });

  it('reads hosts.toml at every pull: an edit takes effect without a signal', async () => {
    // Back to a hosts directory with nothing for the local registry: the pull goes to https and fails.
    const hostsDir = mkdtempSync(path.join(h.tmpDir, 'reload-hosts-'));
    writeConfig({ ...base(), logLevel: 'debug', registry: { configPath: hostsDir } });
    await hup('"key":"registry.configPath"');
    const pull = () => adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
    expect(await pull().catch((e: unknown) => e)).toBeInstanceOf(CriCallError);
    // The harness's files copied in, no SIGHUP: the next pull reads them and succeeds.
    cpSync(h.registry.configPath, hostsDir, { recursive: true });
    expect((await pull()).imageRef).toMatch(/^sha256:/);
    // Put the working directory back for the next test.
    writeConfig({ ...base(), logLevel: 'debug', registry: { configPath: h.registry.configPath } });
    await hup('"key":"registry.configPath"');
  });

  it('keeps the running configuration when the new file is invalid', async () => {
    writeConfig('{ "logLevel": "verbose", ');
    await hup('"configuration reload refused; the running configuration is unchanged"');
    writeConfig({ ...base(), logLevel: 'loud' });
    await hup('"configuration reload refused; the running configuration is unchanged"');
    // Still debug, still the working hosts directory, still answering.
    const before = adapter.logs().length;
    await adapter.client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
    await waitFor('a debug line after the refused reloads', () => (adapter.logs().slice(before).includes('"CRI call"') ? true : undefined));
    expect(adapter.process.exitCode).toBeNull();
  });
});
