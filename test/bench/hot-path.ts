/**
 * The adapter's own share of a List/Status call, without sockets: the real
 * dispatch wrapper (src/cri/dispatch.ts) and handlers over N pods and N
 * containers held in memory as the domain holds them, each answer
 * serialized with the generated codec exactly as grpc-js does before it
 * writes the bytes. It is for profiles and instruction counts, which stay
 * repeatable on a loaded machine where wall-clock figures do not:
 *
 *   node dist/test/bench/hot-path.js listPodSandbox 100 2000
 *   node --cpu-prof dist/test/bench/hot-path.js listContainers 100 20000
 *   valgrind --tool=callgrind node dist/test/bench/hot-path.js containerStatus 100 2000
 *
 * (instructions per call = (Ir at K calls - Ir at 0 calls) / K).
 */
import { performance } from 'node:perf_hooks';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { ContainerConfig, PodSandboxConfig } from '../../src/gen/runtime/v1/api';
import { IMAGE_SERVICE, RUNTIME_SERVICE } from '../../src/cri/wire-encoding';
import type { CriDeps } from '../../src/cri/deps';
import { implement } from '../../src/cri/dispatch';
import { imageHandlers, runtimeHandlers } from '../../src/cri/services';
import { silentLogger } from '../../src/log/logger';
import type { SandboxRecord } from '../../src/sandbox/model';
import type { ContainerRecord } from '../../src/container/model';
import { ImageStore, ImageEntry } from '../../src/image/store';

const [rpc = 'listPodSandbox', podsArg = '100', itersArg = '2000'] = process.argv.slice(2);
const pods = Number(podsArg);
const iterations = Number(itersArg);

const hex = (i: number, salt: string) => (salt + i.toString(16)).padStart(64, '0').slice(-64);
const now = BigInt(Date.now()) * 1_000_000n;

// What a kubelet sends for a pod and its container (labels and annotations it sets itself).
const sandboxes: SandboxRecord[] = [];
const containers: ContainerRecord[] = [];
for (let i = 0; i < pods; i++) {
  const id = hex(i, 'a');
  const uid = `0b9d6e7c-1f2a-4c3b-9d8e-${String(i).padStart(12, '0')}`;
  const podLabels = {
    'io.kubernetes.pod.name': `web-${i}`,
    'io.kubernetes.pod.namespace': 'default',
    'io.kubernetes.pod.uid': uid,
    app: 'web',
    'pod-template-hash': '7d4b9c8f6d',
  };
  const config = PodSandboxConfig.fromPartial({
    metadata: { name: `web-${i}`, namespace: 'default', uid, attempt: 0 },
    hostname: `web-${i}`,
    logDirectory: `/var/log/pods/default_web-${i}_${uid}`,
    labels: podLabels,
    annotations: { 'kubernetes.io/config.seen': '2026-12-07T05:00:00.000000000Z', 'kubernetes.io/config.source': 'api' },
    linux: { cgroupParent: `/kubepods/besteffort/pod${uid}`, securityContext: { namespaceOptions: {} } },
  });
  sandboxes.push({
    id,
    name: `web-${i}_default_${uid}_0`,
    config,
    createdAt: now,
    runtimeHandler: '',
    runtimeType: 'io.containerd.runc.v2',
    imageId: hex(1, 'p'),
    netnsPath: `/var/run/netns/cni-${i}`,
    ips: [`10.88.0.${i % 250}`],
    networkTornDown: false,
    state: 'ready',
    pid: 1000 + i,
  });
  const cconfig = ContainerConfig.fromPartial({
    metadata: { name: 'web', attempt: 0 },
    image: { image: 'docker.io/library/nginx:1.25' },
    logPath: 'web/0.log',
    labels: {
      'io.kubernetes.container.name': 'web',
      'io.kubernetes.pod.name': `web-${i}`,
      'io.kubernetes.pod.namespace': 'default',
      'io.kubernetes.pod.uid': uid,
    },
    annotations: {
      'io.kubernetes.container.hash': '5a1b2c3d',
      'io.kubernetes.container.restartCount': '0',
      'io.kubernetes.container.terminationMessagePath': '/dev/termination-log',
      'io.kubernetes.container.terminationMessagePolicy': 'File',
      'io.kubernetes.pod.terminationGracePeriod': '30',
    },
    mounts: [{ containerPath: '/var/run/secrets/kubernetes.io/serviceaccount', hostPath: `/var/lib/kubelet/pods/${uid}/volumes/token`, readonly: true }],
    linux: { resources: { cpuShares: 2n, oomScoreAdj: 1000n } },
  });
  containers.push({
    id: hex(i, 'c'),
    sandboxId: id,
    name: `web_web-${i}_default_${uid}_0`,
    config: cconfig,
    createdAt: now,
    startedAt: now,
    finishedAt: 0n,
    imageRef: 'docker.io/library/nginx:1.25',
    imageId: `sha256:${hex(2, 'i')}`,
    imageDigestRef: `docker.io/library/nginx@sha256:${hex(3, 'd')}`,
    logPath: `/var/log/pods/default_web-${i}_${uid}/web/0.log`,
    user: { uid: 0, gid: 0, additionalGids: [0, 1, 2] },
    stopSignal: '',
    runtimeType: 'io.containerd.runc.v2',
    oomKilled: false,
    imageMounts: [],
    state: 'running',
    exitCode: 0,
    reason: '',
    message: '',
    pid: 2000 + i,
  });
}

const store = new ImageStore();
for (let i = 0; i < 10; i++) {
  const entry: ImageEntry = {
    id: `sha256:${hex(i, 'e')}`,
    repoTags: [`registry.local/app-${i}:v1`],
    repoDigests: [`registry.local/app-${i}@sha256:${hex(i, 'f')}`],
    size: 5_000_000 + i,
    config: { config: { User: i % 2 ? '1000' : '' } } as ImageEntry['config'],
    chainId: `sha256:${hex(i, 'g')}`,
    recordNames: [`registry.local/app-${i}:v1`, `registry.local/app-${i}@sha256:${hex(i, 'f')}`, `sha256:${hex(i, 'e')}`],
  };
  store.put(entry);
}

const byId = <T extends { id: string }>(xs: T[]) => new Map(xs.map((x) => [x.id, x]));
const sandboxMap = byId(sandboxes);
const containerMap = byId(containers);
// Only what the List/Status handlers read; the rest of the daemon is not built.
const deps = {
  config: { snapshotter: 'overlayfs' },
  adapterVersion: '0.1.0',
  sandboxes: { list: () => [...sandboxMap.values()], require: (id: string) => sandboxMap.get(id)! },
  containers: { list: () => [...containerMap.values()], require: (id: string) => containerMap.get(id)! },
  images: { store, isPinned: () => false, find: (ref: string) => store.resolve(ref) },
} as unknown as CriDeps;

const drain = new AbortController().signal;
const logger = silentLogger();
const runtime = implement(RUNTIME_SERVICE, 'runtime.v1.RuntimeService', runtimeHandlers(deps), logger, drain);
const image = implement(IMAGE_SERVICE, 'runtime.v1.ImageService', imageHandlers(deps), logger, drain);
const definitions = { ...RUNTIME_SERVICE, ...IMAGE_SERVICE } as unknown as Record<
  string,
  { requestDeserialize(b: Buffer): unknown; requestSerialize(m: unknown): Buffer; responseSerialize(m: unknown): Buffer }
>;
const impls = { ...runtime, ...image } as Record<string, (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => void>;

const requests: Record<string, (i: number) => unknown> = {
  version: () => ({ version: '' }),
  listPodSandbox: () => ({}),
  listContainers: () => ({}),
  podSandboxStatus: (i) => ({ podSandboxId: sandboxes[i % pods]!.id, verbose: false }),
  containerStatus: (i) => ({ containerId: containers[i % pods]!.id, verbose: false }),
  listImages: () => ({}),
  imageStatus: (i) => ({ image: { image: `registry.local/app-${i % 10}:v1`, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' }, verbose: false }),
};

const def = definitions[rpc];
const impl = impls[rpc];
const makeRequest = requests[rpc];
if (!def || !impl || !makeRequest) throw new Error(`unknown rpc ${rpc}; one of ${Object.keys(requests).join(', ')}`);
// Requests arrive as bytes: decode them as grpc-js does.
const wire = Array.from({ length: Math.min(pods, 256) }, (_, i) => def.requestSerialize(makeRequest(i)));

let bytes = 0;
function once(i: number): Promise<void> {
  const call = {
    request: def!.requestDeserialize(wire[i % wire.length]!),
    getDeadline: () => Infinity,
    on: () => call,
  } as unknown as ServerUnaryCall<unknown, unknown>;
  return new Promise((resolve, reject) =>
    impl!(call, (err, response) => {
      if (err) return reject(err);
      bytes = def!.responseSerialize(response).length;
      resolve();
    }),
  );
}

async function main(): Promise<void> {
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await once(i);
  const ms = performance.now() - t0;
  process.stdout.write(`${rpc} pods=${pods} calls=${iterations} ${((ms * 1000) / Math.max(1, iterations)).toFixed(1)} us/call, ${bytes} bytes/answer\n`);
}

void main();
