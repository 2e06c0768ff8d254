import { randomBytes } from 'node:crypto';
import type { CallContext } from '../containerd/call';
import { EXTENSIONS, KIND_SANDBOX, LABELS, METADATA_TYPE_URLS } from '../containerd/labels';
import { createThenRootfs } from '../containerd/rootfs';
import { deleteTask, stopTask } from '../containerd/tasks';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import { NamespaceMode, PodSandboxConfig } from '../gen/runtime/v1/api';
import type { ImageEntry } from '../image/store';
import type { AdapterConfig } from '../config/load';
import type { CniNetworkList } from '../network/cni-config';
import { CniPodContext, cniAdd, cniDel, CniResult, CniSettings, podIps } from '../network/cni';
import { cniCapabilities } from '../network/cni-capabilities';
import { adoptNetns, createNetns, netnsNameFor, netnsPath as netnsPathOf, removeNetns } from '../network/netns';
import { podUserNamespace, UserNamespaceMapping } from '../oci/userns';
import { buildSandboxSpec } from '../oci';
import { readSeccompProfile } from '../host/seccomp-profile';
import { nowNs } from '../util/time';
import { step, UndoStack } from '../util/undo';
import type { SandboxContext } from './context';
import { createSandboxFiles, removeSandboxFiles, SandboxFilePaths, sandboxFilePaths } from './files';
import { SandboxRecord, sandboxName, toMetadata, ValidPodSandboxConfig } from './model';
import { persistSandbox } from './persist';
import { validateLogDirectory, validatePodSandboxConfig } from './validate';
import { quote } from '../util/bounds';

/** What RunPodSandbox decided from the request before it changes anything. */
interface SandboxPlan {
  config: ValidPodSandboxConfig;
  handler: string;
  runtime: AdapterConfig['runtimes'][string];
  hostNetwork: boolean;
  hostIpc: boolean;
  /** The CNI network; undefined only for host-network pods. */
  network: CniNetworkList | undefined;
  /** Parsed Localhost seccomp profile of the pod (applied to the infra container), if it names one. */
  seccompProfile: unknown;
  /** The pod's user namespace; undefined when it runs in the host's. */
  userns: UserNamespaceMapping | undefined;
}

/**
 * Everything the request means, checked before the first step (the domain's
 * validation); the pod's seccomp profile is read here too, so a missing or
 * malformed file leaves nothing to undo.
 */
async function plan(ctx: SandboxContext, config: PodSandboxConfig | undefined, runtimeHandler: string): Promise<SandboxPlan> {
  const md = config?.metadata;
  if (!config || !md) throw new InvalidArgumentError('RunPodSandbox: config.metadata is required');
  for (const f of ['name', 'namespace', 'uid'] as const) {
    if (!md[f]) throw new InvalidArgumentError(`RunPodSandbox: config.metadata.${f} is required`);
  }
  validatePodSandboxConfig(config);
  await validateLogDirectory(config.logDirectory, ctx.config.logging.podLogRoot, 'config.log_directory');
  const handler = runtimeHandler || ctx.config.defaultRuntime;
  const runtime = ctx.config.runtimes[handler];
  if (!runtime) {
    throw new InvalidArgumentError(
      `RunPodSandbox: runtime handler ${quote(handler)} is not configured (known: ${Object.keys(ctx.config.runtimes).join(', ')})`,
    );
  }
  const nsOptions = config.linux?.securityContext?.namespaceOptions;
  const hostNetwork = nsOptions?.network === NamespaceMode.NODE;
  const userns = podUserNamespace(nsOptions, 'config.linux.security_context.namespace_options');
  if (userns && !ctx.env.userNamespaces) {
    throw new FailedPreconditionError('RunPodSandbox: this node cannot create user namespaces (/proc/sys/user/max_user_namespaces is 0)');
  }
  const network = ctx.cni.network;
  if (!hostNetwork && !network) {
    throw new FailedPreconditionError(`RunPodSandbox: the pod network is not ready: ${ctx.cni.notReadyReason}`);
  }
  const sc = config.linux?.securityContext;
  const seccompProfile = await readSeccompProfile(sc?.seccomp, sc?.seccompProfilePath ?? '', 'linux.security_context.seccomp');
  return {
    config: { ...config, metadata: md },
    handler,
    runtime,
    hostNetwork,
    hostIpc: nsOptions?.ipc === NamespaceMode.NODE,
    network,
    seccompProfile,
    userns,
  };
}

async function sandboxImage(ctx: SandboxContext, call: CallContext): Promise<ImageEntry> {
  return ctx.images.store.resolve(ctx.config.sandboxImage) ?? (await ctx.images.pull(ctx.config.sandboxImage, undefined, call));
}

/**
 * The pod's network namespace, unless it uses the host's; resolves once it
 * exists. A pod with a user namespace gets its network namespace from runc
 * (the kernel only lets that user namespace mount sysfs when it owns the
 * network namespace too): it is named once the infra task exists.
 */
function startNetns(
  id: string,
  p: SandboxPlan,
  infraPid: Promise<number>,
  undo: UndoStack,
  call: CallContext,
  prepared: boolean,
): { name?: string; path?: string; ready: Promise<unknown> } {
  if (p.hostNetwork) return { ready: Promise.resolve() };
  const name = netnsNameFor(id);
  undo.push('remove network namespace', () => removeNetns(name));
  const ready = prepared
    ? Promise.resolve()
    : p.userns
    ? infraPid.then((pid) => step('name the infra task\'s network namespace', () => adoptNetns(name, pid, call.signal)))
    : step('create network namespace', () => createNetns(name, call.signal));
  return { name, path: netnsPathOf(name), ready };
}

/** CNI ADD once the namespace exists; undefined for host-network pods. */
async function wireNetwork(
  network: CniNetworkList | undefined,
  pod: CniPodContext | undefined,
  netnsReady: Promise<unknown>,
  settings: CniSettings,
  undo: UndoStack,
  call: CallContext,
): Promise<CniResult | undefined> {
  if (!pod || !network) return undefined;
  await netnsReady;
  undo.push('CNI DEL', async () => {
    const errors = await cniDel(network, pod, undefined, settings);
    if (errors.length) throw errors[0];
  });
  return step('CNI ADD', () => cniAdd(network, pod, settings, call.signal));
}

/**
 * The infra container: spec, rootfs snapshot and container object, then its
 * task once the pod's files and namespace exist (runc mounts the files and
 * joins the namespace). Returns the task's pid.
 */
async function createInfra(
  ctx: SandboxContext,
  p: SandboxPlan,
  record: SandboxRecord,
  image: ImageEntry,
  files: SandboxFilePaths,
  before: Promise<unknown>[],
  undo: UndoStack,
  call: CallContext,
): Promise<number> {
  const { id } = record;
  const { spec } = await step('build sandbox spec', async () =>
    buildSandboxSpec({
      sandboxId: id,
      config: p.config,
      imageName: ctx.config.sandboxImage,
      imageConfig: image.config.config ?? {},
      netnsPath: p.userns ? undefined : record.netnsPath,
      sandboxFiles: files,
      seccompProfile: p.seccompProfile,
      env: ctx.env,
    }),
  );
  record.spec = spec;
  const md = p.config.metadata;
  const { mounts } = await ctx.images.remapped.withParent(image, p.userns, call, (parent) =>
    createThenRootfs(
      ctx.conn,
      { snapshotter: ctx.config.snapshotter, key: id, parent },
      {
        what: 'infra container',
        container: {
          id,
          labels: {
            [LABELS.kind]: KIND_SANDBOX,
            [LABELS.name]: record.name,
            [LABELS.podName]: md.name,
            [LABELS.podNamespace]: md.namespace,
            [LABELS.podUid]: md.uid,
          },
          image: ctx.config.sandboxImage,
          runtime: p.runtime,
          spec,
          extension: { key: EXTENSIONS.sandboxMetadata, typeUrl: METADATA_TYPE_URLS.sandbox, value: toMetadata(record) },
        },
      },
      undo,
      call,
    ),
  );
  await Promise.all(before);
  // Before the step, as for the container: a create whose answer was lost may have happened.
  undo.push('delete infra task', async () => {
    await stopTask(ctx.conn, id, 9, 0);
    await deleteTask(ctx.conn, id);
  });
  const task = await step('create infra task', () =>
    ctx.conn.tasks.create(
      { containerId: id, rootfs: mounts, stdin: '', stdout: '', stderr: '', terminal: false, checkpoint: undefined, options: undefined, runtimePath: '' },
      call,
    ),
  );
  return task.pid;
}

/**
 * RunPodSandbox: reserve the name, make the pod's files and network
 * namespace, then wire the network (CNI ADD) while the infra container is
 * created in containerd, start it, and record what CNI gave. Every step
 * registers its undo; a failure unwinds them and names the step.
 */
export async function runPodSandbox(
  ctx: SandboxContext,
  configIn: PodSandboxConfig | undefined,
  runtimeHandler: string,
  call: CallContext,
): Promise<string> {
  const p = await plan(ctx, configIn, runtimeHandler);
  const { config } = p;
  // A namespace made ahead comes with the sandbox ID it is named for (network/netns-pool.ts).
  const pooled = p.hostNetwork || p.userns ? undefined : ctx.netnsPool.take();
  const id = pooled?.sandboxId ?? randomBytes(32).toString('hex');
  const name = sandboxName(config);
  const log = { podSandboxId: id, pod: `${config.metadata.namespace}/${config.metadata.name}` };
  const undo = new UndoStack(ctx.logger, log);
  try {
    ctx.names.reserve(name, id);
  } catch (err) {
    if (pooled) void removeNetns(pooled.name).then(pooled.claimed, () => undefined);
    throw err;
  }
  undo.push('release name', async () => ctx.names.release(name, id));

  try {
    // Before any step: an adapter killed from here on leaves a marker the next reconcile pass undoes.
    ctx.pending.begin(id, { config: PodSandboxConfig.toJSON(config), hostNetwork: p.hostNetwork });
    // The marker now accounts for the prepared namespace (its undo removes it).
    pooled?.claimed();
    return await ctx.locks.run(id, async () => {
      const image = await step('ensure sandbox image', () => sandboxImage(ctx, call));
      // The pod's files, its network namespace and the infra container's rootfs and record do not
      // depend on each other: they are made at once. CNI ADD waits for the namespace only, and
      // creating the infra task for everything.
      const files = sandboxFilePaths(ctx.config.state, id, p.hostIpc);
      undo.push('remove pod files', () => removeSandboxFiles(files));
      const filesReady = step('write pod files', () =>
        createSandboxFiles(files, { hostname: config.hostname, hostNetwork: p.hostNetwork, dnsConfig: config.dnsConfig }),
      );
      let infraCreated!: (pid: number) => void;
      let infraFailed!: (err: unknown) => void;
      const infraPid = new Promise<number>((resolve, reject) => {
        infraCreated = resolve;
        infraFailed = reject;
      });
      infraPid.catch(() => undefined);
      const netns = startNetns(id, p, infraPid, undo, call, pooled !== undefined);
      const record: SandboxRecord = {
        id,
        name,
        config,
        createdAt: nowNs(),
        runtimeHandler: p.handler,
        runtimeType: p.runtime.type,
        imageId: image.id,
        netnsName: netns.name,
        netnsPath: netns.path,
        ips: [],
        networkTornDown: p.hostNetwork,
        state: 'notready',
        pid: 0,
      };
      const pod: CniPodContext | undefined = netns.path
        ? {
            containerId: id,
            netnsPath: netns.path,
            ifName: 'eth0',
            podName: config.metadata.name,
            podNamespace: config.metadata.namespace,
            podUid: config.metadata.uid,
            capabilities: cniCapabilities(config, ctx.podCidr()),
          }
        : undefined;
      const cniSettings = { binDirs: ctx.config.cni.binDirs, timeoutMs: ctx.config.cni.pluginTimeoutSeconds * 1000 };

      // Everything settles before an undo runs; the first failure in this order is the cause.
      const [filesDone, netnsDone, net, infra] = await Promise.allSettled([
        filesReady,
        netns.ready,
        wireNetwork(p.network, pod, netns.ready, cniSettings, undo, call),
        createInfra(ctx, p, record, image, files, p.userns ? [filesReady] : [filesReady, netns.ready], undo, call).then(
          (pid) => (infraCreated(pid), pid),
          (err: unknown) => {
            infraFailed(err);
            throw err;
          },
        ),
      ]);
      for (const r of [filesDone, netnsDone, net, infra]) if (r.status === 'rejected') throw r.reason;
      if (net.status !== 'fulfilled' || infra.status !== 'fulfilled') throw new Error('unreachable');

      await step('start infra task', () => ctx.conn.tasks.start({ containerId: id, execId: '' }, call));
      record.pid = infra.value;
      record.cniResult = net.value;
      record.ips = podIps(net.value);
      record.state = 'ready';
      await step('record pod network', () => persistSandbox(ctx, record));
      ctx.sandboxes.set(id, record);
      await ctx.pending.end(id);
      ctx.logger.info('pod sandbox running', { ...log, ips: record.ips, pid: record.pid });
      return id;
    });
  } catch (err) {
    // An undo that failed (containerd unreachable) is retried by the reconcile pass from the marker.
    if (await undo.unwind()) await ctx.pending.end(id);
    else ctx.pending.abandon(id);
    // The caller only gets the error; the ID ties it to the CNI plugins' and containerd's logs.
    ctx.logger.warn('pod sandbox not created; its steps were undone', { ...log, error: (err as Error).message });
    throw err;
  }
}
