import { randomBytes } from 'node:crypto';
import type { CallContext } from '../containerd/call';
import { createContainerObject } from '../containerd/containers';
import { withLease } from '../containerd/leases';
import { deleteTask, ignoreNotFound, stopTask } from '../containerd/tasks';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import { NamespaceMode, PodSandboxConfig } from '../gen/runtime/v1/api';
import type { ImageEntry } from '../image/store';
import { CniPodContext, cniAdd, cniDel, CniResult, podIps } from '../network/cni';
import { cniCapabilities } from '../network/cni-capabilities';
import { createNetns, netnsNameFor, netnsPath as netnsPathOf, removeNetns } from '../network/netns';
import { buildSandboxSpec } from '../oci';
import { EXTENSIONS, KIND_SANDBOX, LABELS, METADATA_TYPE_URLS } from '../containerd/labels';
import type { SandboxContext } from './context';
import { createSandboxFiles, removeSandboxFiles, sandboxFilePaths } from './files';
import { nowNs } from '../util/time';
import { SandboxRecord, sandboxName, toMetadata } from './model';
import { step, UndoStack } from '../util/undo';
import { persistSandbox } from './persist';

function validate(config: PodSandboxConfig | undefined): asserts config is PodSandboxConfig {
  const md = config?.metadata;
  if (!config || !md) throw new InvalidArgumentError('RunPodSandbox: config.metadata is required');
  for (const f of ['name', 'namespace', 'uid'] as const) {
    if (!md[f]) throw new InvalidArgumentError(`RunPodSandbox: config.metadata.${f} is required`);
  }
}

async function sandboxImage(ctx: SandboxContext, call: CallContext): Promise<ImageEntry> {
  return ctx.images.store.resolve(ctx.config.sandboxImage) ?? (await ctx.images.pull(ctx.config.sandboxImage, undefined, call));
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
  runtimeHandlerIn: string,
  call: CallContext,
): Promise<string> {
  validate(configIn);
  const config = configIn;
  const handler = runtimeHandlerIn || ctx.config.defaultRuntime;
  const runtime = ctx.config.runtimes[handler];
  if (!runtime) {
    throw new InvalidArgumentError(
      `RunPodSandbox: runtime handler "${handler}" is not configured (known: ${Object.keys(ctx.config.runtimes).join(', ')})`,
    );
  }
  const nsOptions = config.linux?.securityContext?.namespaceOptions;
  const hostNetwork = nsOptions?.network === NamespaceMode.NODE;
  const hostIpc = nsOptions?.ipc === NamespaceMode.NODE;
  const network = ctx.cni.network;
  if (!hostNetwork && !network) {
    throw new FailedPreconditionError(`RunPodSandbox: the pod network is not ready: ${ctx.cni.notReadyReason}`);
  }

  const id = randomBytes(32).toString('hex');
  const name = sandboxName(config);
  const log = { podSandboxId: id, pod: `${config.metadata!.namespace}/${config.metadata!.name}` };
  const undo = new UndoStack(ctx.logger, log);
  ctx.names.reserve(name, id);
  undo.push('release name', async () => ctx.names.release(name, id));

  try {
    return await ctx.locks.run(id, async () => {
      const image = await step('ensure sandbox image', () => sandboxImage(ctx, call));
      const files = sandboxFilePaths(ctx.config.state, id, hostIpc);
      // The pod's files, its network namespace and the infra container's rootfs and record do not
      // depend on each other: they are made at once. CNI ADD waits for the namespace only, and
      // creating the infra task for everything (runc joins the namespace and mounts the files).
      undo.push('remove pod files', () => removeSandboxFiles(files));
      const filesReady = step('write pod files', () =>
        createSandboxFiles(files, { hostname: config.hostname, hostNetwork, dnsConfig: config.dnsConfig }),
      );

      let netnsName: string | undefined;
      let netnsPath: string | undefined;
      let netnsReady: Promise<unknown> = Promise.resolve();
      if (!hostNetwork) {
        netnsName = netnsNameFor(id);
        netnsPath = netnsPathOf(netnsName);
        const created = netnsName;
        undo.push('remove network namespace', () => removeNetns(created));
        netnsReady = step('create network namespace', () => createNetns(created, call.signal));
      }

      const pod: CniPodContext | undefined = netnsPath
        ? {
            containerId: id,
            netnsPath,
            ifName: 'eth0',
            podName: config.metadata!.name,
            podNamespace: config.metadata!.namespace,
            podUid: config.metadata!.uid,
            capabilities: cniCapabilities(config, ctx.podCidr()),
          }
        : undefined;
      const cniSettings = { binDirs: ctx.config.cni.binDirs, timeoutMs: ctx.config.cni.pluginTimeoutSeconds * 1000 };

      const record: SandboxRecord = {
        id,
        name,
        config,
        createdAt: nowNs(),
        runtimeHandler: handler,
        runtimeType: runtime.type,
        imageId: image.id,
        netnsName,
        netnsPath,
        ips: [],
        networkTornDown: hostNetwork,
        state: 'notready',
        pid: 0,
      };

      // The network and the infra container do not depend on each other: do both at once.
      const wireNetwork = async (): Promise<CniResult | undefined> => {
        if (!pod || !network) return undefined;
        await netnsReady;
        undo.push('CNI DEL', async () => {
          const errors = await cniDel(network, pod, undefined, cniSettings);
          if (errors.length) throw errors[0];
        });
        return step('CNI ADD', () => cniAdd(network, pod, cniSettings, call.signal));
      };
      const createInfra = async (): Promise<number> => {
        const { spec } = await step('build sandbox spec', async () =>
          buildSandboxSpec({
            sandboxId: id,
            config,
            imageName: ctx.config.sandboxImage,
            imageConfig: image.config.config ?? {},
            netnsPath,
            sandboxFiles: files,
            env: ctx.env,
          }),
        );
        record.spec = spec;
        const snapshotter = ctx.config.snapshotter;
        // Until the container references it, the new active snapshot is garbage to containerd's GC,
        // which runs concurrently: hold it with a lease from Prepare until the container exists.
        const mounts = await withLease(ctx.conn, { expireAfterSeconds: 600, releaseInBackground: true }, call, async (leased) => {
          const prepared = await step('prepare rootfs snapshot', () =>
            ctx.conn.snapshots.prepare({ snapshotter, key: id, parent: image.chainId ?? '', labels: {} }, leased),
          );
          undo.push('remove snapshot', () => ignoreNotFound(ctx.conn.snapshots.remove({ snapshotter, key: id })));
          await step('create infra container', () =>
            createContainerObject(
              ctx.conn,
              {
                id,
                labels: {
                  [LABELS.kind]: KIND_SANDBOX,
                  [LABELS.name]: name,
                  [LABELS.podName]: config.metadata!.name,
                  [LABELS.podNamespace]: config.metadata!.namespace,
                  [LABELS.podUid]: config.metadata!.uid,
                },
                image: ctx.config.sandboxImage,
                runtime,
                spec,
                snapshotter,
                extension: { key: EXTENSIONS.sandboxMetadata, typeUrl: METADATA_TYPE_URLS.sandbox, value: toMetadata(record) },
              },
              leased,
            ),
          );
          undo.push('delete infra container', () => ignoreNotFound(ctx.conn.containers.delete({ id })));
          return prepared.mounts;
        });
        await filesReady;
        await netnsReady;
        const task = await step('create infra task', () =>
          ctx.conn.tasks.create(
            { containerId: id, rootfs: mounts, stdin: '', stdout: '', stderr: '', terminal: false, checkpoint: undefined, options: undefined, runtimePath: '' },
            call,
          ),
        );
        undo.push('delete infra task', async () => {
          await stopTask(ctx.conn, id, 9, 0);
          await deleteTask(ctx.conn, id);
        });
        return task.pid;
      };

      // Everything settles before an undo runs; the first failure in this order is the cause.
      const [filesDone, netnsDone, net, infra] = await Promise.allSettled([filesReady, netnsReady, wireNetwork(), createInfra()]);
      for (const r of [filesDone, netnsDone, net, infra]) if (r.status === 'rejected') throw r.reason;
      if (net.status !== 'fulfilled' || infra.status !== 'fulfilled') throw new Error('unreachable');

      await step('start infra task', () => ctx.conn.tasks.start({ containerId: id, execId: '' }, call));
      record.pid = infra.value;
      record.cniResult = net.value;
      record.ips = podIps(net.value);
      record.state = 'ready';
      await step('record pod network', () => persistSandbox(ctx, record));
      ctx.sandboxes.set(id, record);
      ctx.logger.info('pod sandbox running', { ...log, ips: record.ips, pid: record.pid });
      return id;
    });
  } catch (err) {
    await undo.unwind();
    // The caller only gets the error; the ID ties it to the CNI plugins' and containerd's logs.
    ctx.logger.warn('pod sandbox not created; its steps were undone', { ...log, error: (err as Error).message });
    throw err;
  }
}
