/**
 * Bounded input (design principle 6), through the CRI socket of the built
 * daemon against the harness's containerd: oversized and malformed requests
 * are refused with the right code before any work, the error quotes at most
 * a bounded part of what was sent, nothing is left behind, and the daemon
 * keeps answering Version (from a worker thread with a client of its own)
 * within 100 ms while each one is handled.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { credentials, Metadata, ServiceError, status as Code } from '@grpc/grpc-js';
import {
  ContainerConfig,
  CreateContainerRequest,
  DeepPartial,
  ListContainersRequest,
  ListContainersResponse,
  PodSandboxConfig,
  PullImageRequest,
  RunPodSandboxRequest,
  RuntimeServiceClient,
  SecurityProfile_ProfileType,
  StreamContainersRequest,
  StreamContainersResponse,
} from '../../src/gen/runtime/v1/api';
import { loadHarnessEnv } from '../harness/env';
import type { AdapterProcess } from '../support/adapter-process';
import { CriCallError, CriClient } from '../support/cri-client';
import { startHarnessAdapter } from '../support/harness-adapter';
import { whileProbingVersion } from '../support/version-probe';

const h = loadHarnessEnv();
const NS = 'cri-adapter-it-bounds';
const MiB = 1024 * 1024;
/** What the kubelet (and crictl) accept in one message. */
const KUBELET_MAX_MESSAGE = 16 * MiB;

let adapter: AdapterProcess;
let client: CriClient;
let tmp: string;
const pods: string[] = [];
let pod: { id: string; config: PodSandboxConfig };
let sleeper: string;

function podConfig(name: string, more: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  return PodSandboxConfig.fromPartial({
    metadata: { name, namespace: 'bounds-test', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    logDirectory: path.join(tmp, 'logs', name),
    linux: {},
    ...more,
  });
}

async function runPod(name: string, more: DeepPartial<PodSandboxConfig> = {}): Promise<{ id: string; config: PodSandboxConfig }> {
  const config = podConfig(name, more);
  const { podSandboxId } = await client.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config }));
  pods.push(podSandboxId);
  return { id: podSandboxId, config };
}

function containerRequest(name: string, extra: DeepPartial<ContainerConfig> = {}): CreateContainerRequest {
  return CreateContainerRequest.fromPartial({
    podSandboxId: pod.id,
    sandboxConfig: pod.config,
    config: { metadata: { name }, image: { image: h.images.busybox }, command: ['sleep', '3600'], linux: {}, ...extra },
  });
}

/**
 * Sends one request while Version is probed; expects it refused with
 * `code`, a message that mentions each of `mentions` and stays short, and
 * a daemon that kept answering.
 */
async function expectRefused(what: string, call: () => Promise<unknown>, code: number, mentions: string[] = []): Promise<string> {
  const probe = await whileProbingVersion(adapter.socket, call);
  expect({ what, ok: probe.outcome.ok }).toEqual({ what, ok: false });
  const err = (probe.outcome as { error: unknown }).error;
  expect(err).toBeInstanceOf(CriCallError);
  const { code: got, details } = err as CriCallError;
  expect({ what, code: got, details }).toEqual({ what, code, details: expect.any(String) });
  for (const m of mentions) expect(details).toContain(m);
  // Nothing unbounded is echoed: the message is for a person, not a copy of the request.
  expect(details.length).toBeLessThan(400);
  expect({ what, samples: probe.samples > 0, slowVersionMs: probe.maxMs < 100 ? 'under 100' : probe.maxMs }).toEqual({
    what,
    samples: true,
    slowVersionMs: 'under 100',
  });
  return details;
}

/** The daemon's log has no line that carries a run of the filler a test sent. */
function expectLogsFreeOf(filler: string): void {
  expect(adapter.logs().includes(filler)).toBe(false);
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(h.tmpDir, 'bounds-'));
  adapter = await startHarnessAdapter(h, { namespace: NS, dir: path.join(tmp, 'adapter') });
  client = adapter.client;
  await client.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
  pod = await runPod('main');
  const { containerId } = await client.runtime.createContainer(containerRequest('sleeper'));
  await client.runtime.startContainer({ containerId });
  sleeper = containerId;
}, 120_000);

afterAll(async () => {
  try {
    for (const id of pods) {
      await client.runtime.stopPodSandbox({ podSandboxId: id }).catch(() => undefined);
      await client.runtime.removePodSandbox({ podSandboxId: id }).catch(() => undefined);
    }
  } finally {
    await adapter?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}, 60_000);

describe('IDs and message size', () => {
  const huge = 'f'.repeat(MiB);

  test('a 1 MiB ID is refused with INVALID_ARGUMENT by every RPC that takes one, quoting 16 characters of it', async () => {
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['PodSandboxStatus', () => client.runtime.podSandboxStatus({ podSandboxId: huge, verbose: false })],
      ['UpdatePodSandboxResources', () => client.runtime.updatePodSandboxResources({ podSandboxId: huge })],
      ['ExecSync', () => client.runtime.execSync({ containerId: huge, cmd: ['true'], timeout: 0n })],
      ['ContainerStatus', () => client.runtime.containerStatus({ containerId: huge, verbose: false })],
      ['StopPodSandbox', () => client.runtime.stopPodSandbox({ podSandboxId: huge })],
      ['RemoveContainer', () => client.runtime.removeContainer({ containerId: huge })],
      ['ListContainers', () => client.runtime.listContainers(ListContainersRequest.fromPartial({ filter: { id: huge } }))],
      ['CreateContainer', () => client.runtime.createContainer({ ...containerRequest('x'), podSandboxId: huge })],
    ];
    for (const [what, call] of calls) {
      const details = await expectRefused(what, call, Code.INVALID_ARGUMENT, ['longer than an ID (128 characters at most)']);
      expect(details).toContain(`"${'f'.repeat(16)}"… (1048576 characters)`);
    }
    expectLogsFreeOf('f'.repeat(200));
  });

  test('a malformed ID is INVALID_ARGUMENT, an unknown one NOT_FOUND, and a unique prefix still finds its container', async () => {
    await expectRefused('slash', () => client.runtime.containerStatus({ containerId: '../../etc/passwd', verbose: false }), Code.INVALID_ARGUMENT, [
      'container_id',
      'is not an ID',
    ]);
    await expectRefused('newline', () => client.runtime.podSandboxStatus({ podSandboxId: 'ab\ncd', verbose: false }), Code.INVALID_ARGUMENT, ['"ab\\ncd"']);
    await expectRefused('unknown', () => client.runtime.containerStatus({ containerId: 'f'.repeat(64), verbose: false }), Code.NOT_FOUND);
    const byPrefix = await client.runtime.containerStatus({ containerId: sleeper.slice(0, 12), verbose: false });
    expect(byPrefix.status?.id).toBe(sleeper);
  });

  test('a 100 MB request is refused by gRPC itself with RESOURCE_EXHAUSTED', async () => {
    const details = await expectRefused(
      '100 MB',
      () => client.runtime.podSandboxStatus({ podSandboxId: 'a'.repeat(100 * 1000 * 1000), verbose: false }),
      Code.RESOURCE_EXHAUSTED,
    );
    expect(details).toMatch(/larger than max/i);
    // The daemon is fine afterwards.
    expect((await client.runtime.podSandboxStatus({ podSandboxId: pod.id, verbose: false })).status?.id).toBe(pod.id);
  });
});

describe('files read on a request\'s behalf', () => {
  test('a Localhost seccomp profile that is a FIFO, a directory, a device or too large is refused at once, and nothing is left', async () => {
    const fifo = path.join(tmp, 'profile.fifo');
    execFileSync('mkfifo', [fifo]);
    const big = path.join(tmp, 'big.json');
    writeFileSync(big, `{"defaultAction":"SCMP_ACT_ALLOW","x":"${'y'.repeat(2 * MiB)}"}`);
    const cases: Array<[string, string, string]> = [
      ['fifo', fifo, 'is a FIFO; only a regular file is read'],
      ['directory', tmp, 'is a directory; only a regular file is read'],
      ['device', '/dev/zero', 'is not a regular file; only a regular file is read'],
      ['too large', big, 'at most 1048576 are read'],
    ];
    for (const [what, file, reason] of cases) {
      const request = containerRequest(`seccomp-${what.replace(' ', '-')}`, {
        linux: { securityContext: { seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: file } } },
      });
      await expectRefused(what, () => client.runtime.createContainer(request), Code.INVALID_ARGUMENT, ['linux.security_context.seccomp', reason]);
    }
    const { containers } = await client.runtime.listContainers(ListContainersRequest.fromPartial({ filter: { podSandboxId: pod.id } }));
    expect(containers.map((c) => c.id)).toEqual([sleeper]);
  });

  test('a device host path naming a large directory tree is refused, not walked', async () => {
    const request = containerRequest('dev-root', { devices: [{ containerPath: '/dev/x', hostPath: '/', permissions: 'rwm' }] });
    await expectRefused('/', () => client.runtime.createContainer(request), Code.INVALID_ARGUMENT, ['devices[0].host_path']);
  });
});

describe('what a spec may hold', () => {
  const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
  const manyKeys = (n: number, value = 'v'): Record<string, string> => Object.fromEntries(many(n, (i) => [`key-${i}`, value]));

  test('100,000 devices, env entries, args or labels on a container are refused naming the field and the limit', async () => {
    const cases: Array<[string, DeepPartial<ContainerConfig>, string]> = [
      ['devices', { devices: many(100_000, () => ({ containerPath: '/dev/null', hostPath: '/dev/null', permissions: 'rwm' })) }, 'the request holds more than 65536 protobuf fields and lengths'],
      ['envs', { envs: many(100_000, (i) => ({ key: `E${i}`, value: Buffer.from('x') })) }, 'the request holds more than 65536 protobuf fields and lengths'],
      ['args', { args: many(100_000, () => 'a') }, 'the request holds more than 65536 protobuf fields and lengths'],
      ['labels', { labels: manyKeys(100_000) }, 'the request holds more than 65536 protobuf fields and lengths'],
      ['mounts', { mounts: many(5000, () => ({ containerPath: '/m', hostPath: '/tmp' })) }, 'config.mounts: has 5000 entries; at most 1024'],
      // Under the wire's budget, the domain's own limits name the field.
      ['some-devices', { devices: many(2000, () => ({ containerPath: '/dev/null', hostPath: '/dev/null', permissions: 'rwm' })) }, 'config.devices: has 2000 entries; at most 1024'],
      ['some-envs', { envs: many(10_000, (i) => ({ key: `E${i}`, value: Buffer.from('x') })) }, 'config.envs: has 10000 entries; at most 8192'],
      ['some-labels', { labels: manyKeys(2000) }, 'config.labels: has 2000 entries; at most 1024'],
    ];
    for (const [what, extra, message] of cases) {
      await expectRefused(what, () => client.runtime.createContainer(containerRequest(`many-${what}`, extra)), Code.INVALID_ARGUMENT, [message]);
    }
    const { containers } = await client.runtime.listContainers(ListContainersRequest.fromPartial({ filter: { podSandboxId: pod.id } }));
    expect(containers.map((c) => c.id)).toEqual([sleeper]);
  });

  test('100,000 labels or annotations (about 9 MB) on a pod are refused, and no pod is made', async () => {
    const filler = 'z'.repeat(60);
    await expectRefused('pod labels', () => runPod('many-labels', { labels: manyKeys(100_000, filler) }), Code.INVALID_ARGUMENT, [
      'the request holds more than 65536 protobuf fields and lengths',
    ]);
    await expectRefused('pod annotations', () => runPod('many-annotations', { annotations: manyKeys(100_000, filler) }), Code.INVALID_ARGUMENT, [
      'the request holds more than 65536 protobuf fields and lengths',
    ]);
    await expectRefused('annotation size', () => runPod('big-annotations', { annotations: manyKeys(20, 'q'.repeat(30 * 1024)) }), Code.INVALID_ARGUMENT, [
      'config.annotations: holds more than 512 KiB of keys and values',
    ]);
    const { items } = await client.runtime.listPodSandbox({});
    expect(items.map((p) => p.metadata?.name).sort()).toEqual(['main']);
    expectLogsFreeOf(filler.repeat(3));
  });

  test('a list answer that would outgrow a kubelet\'s 16 MiB is refused naming the Stream RPC, which sends every item', async () => {
    // As large as a container may be: annotations at their limit, labels near theirs.
    const annotations = { big: 'a'.repeat(500 * 1024) };
    const labels = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`label-${i}`, 'l'.repeat(3700)]));
    const listPod = await runPod('list-size');
    const made: string[] = [];
    // A client with the kubelet's receive limit.
    const kubelet = new RuntimeServiceClient(`unix://${adapter.socket}`, credentials.createInsecure(), {
      'grpc.max_receive_message_length': KUBELET_MAX_MESSAGE,
    });
    try {
    for (let i = 0; made.length * 560 * 1024 < KUBELET_MAX_MESSAGE + MiB; i++) {
      const { containerId } = await client.runtime.createContainer(
        CreateContainerRequest.fromPartial({
          podSandboxId: listPod.id,
          sandboxConfig: listPod.config,
          config: { metadata: { name: `big-${i}` }, image: { image: h.images.busybox }, command: ['true'], labels, annotations, linux: {} },
        }),
      );
      made.push(containerId);
    }
      const list = () =>
        new Promise<ListContainersResponse>((resolve, reject) =>
          kubelet.listContainers(ListContainersRequest.fromPartial({}), new Metadata(), { deadline: Date.now() + 60_000 }, (err, res) =>
            err ? reject(new CriCallError(err.code, err.details, 'ListContainers')) : resolve(res!),
          ),
        );
      await expectRefused('ListContainers', list, Code.RESOURCE_EXHAUSTED, ['over the 16 MiB a kubelet accepts', 'StreamContainers']);
      // Filtered to one pod's worth it still answers.
      const one = await client.runtime.listContainers(ListContainersRequest.fromPartial({ filter: { id: made[0] } }));
      expect(one.containers.map((c) => c.id)).toEqual([made[0]]);

      const batches = await new Promise<StreamContainersResponse[]>((resolve, reject) => {
        const out: StreamContainersResponse[] = [];
        const stream = kubelet.streamContainers(StreamContainersRequest.fromPartial({}), new Metadata(), { deadline: Date.now() + 60_000 });
        stream.on('data', (m: StreamContainersResponse) => out.push(m));
        stream.on('error', (e: ServiceError) => reject(e));
        stream.on('end', () => resolve(out));
      });
      expect(batches.length).toBeGreaterThan(1);
      const ids = batches.flatMap((b) => b.containers.map((c) => c.id));
      expect(ids.sort()).toEqual([...made, sleeper].sort());
      expect(ids.length).toBe(new Set(ids).size);
    } finally {
      kubelet.close();
      await client.runtime.stopPodSandbox({ podSandboxId: listPod.id });
      await client.runtime.removePodSandbox({ podSandboxId: listPod.id });
    }
  }, 240_000);
});

describe('values written into the pod\'s files or handed to the host', () => {
  test('DNS servers, searches and options, hostname, ports, log and cgroup paths are checked before anything is made', async () => {
    const cases: Array<[string, DeepPartial<PodSandboxConfig>, string[]]> = [
      ['search newline', { dnsConfig: { searches: ['example.com\nnameserver 6.6.6.6'] } }, ['config.dns_config.searches[0]', 'without whitespace or control characters']],
      ['server name', { dnsConfig: { servers: ['dns.example.com'] } }, ['config.dns_config.servers[0]', 'is not an IP address']],
      ['option space', { dnsConfig: { options: ['ndots:5 attempts:9'] } }, ['config.dns_config.options[0]']],
      ['too many searches', { dnsConfig: { searches: Array.from({ length: 40 }, (_, i) => `d${i}.example`) } }, ['config.dns_config.searches: has 40 entries; at most 32']],
      ['hostname', { hostname: 'a\nb' }, ['config.hostname', 'is not a host name']],
      ['host port', { portMappings: [{ protocol: 0, containerPort: 80, hostPort: 70000, hostIp: '' }] }, ['config.port_mappings[0].host_port']],
      ['host ip', { portMappings: [{ protocol: 0, containerPort: 80, hostPort: 8080, hostIp: 'example.com' }] }, ['config.port_mappings[0].host_ip']],
      ['log directory', { logDirectory: 'relative/logs' }, ['config.log_directory', 'must be an absolute path']],
      ['log directory dots', { logDirectory: '/var/log/pods/../../etc' }, ['config.log_directory', '".."']],
      ['cgroup parent', { linux: { cgroupParent: '/kubepods/../../system.slice' } }, ['cgroup_parent', '".."']],
      ['log directory etc', { logDirectory: '/etc' }, ['config.log_directory', 'is a system directory']],
    ];
    for (const [what, more, mentions] of cases) {
      await expectRefused(what, () => runPod(`bad-${what.replace(/ /g, '-')}`, more), Code.INVALID_ARGUMENT, mentions);
    }
    const { items } = await client.runtime.listPodSandbox({});
    expect(items.map((p) => p.metadata?.name).sort()).toEqual(['main']);
    await expectRefused('log path', () => client.runtime.createContainer(containerRequest('escape', { logPath: '../../escape.log' })), Code.INVALID_ARGUMENT, [
      'log_path',
      "leaves the pod's log directory",
    ]);
  });

  test('a valid DNS config is written as given', async () => {
    const ok = await runPod('dns-ok', { dnsConfig: { servers: ['10.0.0.10', 'fe80::1%eth0'], searches: ['ns.svc.cluster.local', 'cluster.local'], options: ['ndots:5'] } });
    const { containerId } = await client.runtime.createContainer(
      CreateContainerRequest.fromPartial({
        podSandboxId: ok.id,
        sandboxConfig: ok.config,
        config: { metadata: { name: 'c' }, image: { image: h.images.busybox }, command: ['sleep', '3600'], linux: {} },
      }),
    );
    await client.runtime.startContainer({ containerId });
    const r = await client.runtime.execSync({ containerId, cmd: ['cat', '/etc/resolv.conf'], timeout: 10n });
    expect(r.stdout.toString()).toBe('search ns.svc.cluster.local cluster.local\nnameserver 10.0.0.10\nnameserver fe80::1%eth0\noptions ndots:5\n');
  });
});

describe('ExecSync timeout', () => {
  test('a negative timeout means no timeout, as 0 does', async () => {
    const r = await client.runtime.execSync({ containerId: sleeper, cmd: ['sh', '-c', 'sleep 1; echo done'], timeout: -1n });
    expect({ exitCode: r.exitCode, stdout: r.stdout.toString() }).toEqual({ exitCode: 0, stdout: 'done\n' });
  });
});
