import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { CallContext } from '../containerd/call';
import { createOnRootfs, createThenRootfs } from '../containerd/rootfs';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors';
import { ContainerConfig, NamespaceMode, PodSandboxConfig } from '../gen/runtime/v1/api';
import { sandboxFilePaths } from '../sandbox/files';
import { nowNs } from '../util/time';
import { step, UndoStack } from '../util/undo';
import { buildContainerSpec, requestedCdiDevices } from '../oci';
import { readSeccompProfile } from '../host/seccomp-profile';
import { EXTENSIONS, KIND_CONTAINER, LABELS, METADATA_TYPE_URLS } from '../containerd/labels';
import type { ContainerContext } from './context';
import { quote } from '../util/bounds';
import { deviceLookupFor, listDevices, propagationLookup } from './host-lookups';
import { ImageEtcFiles, readImageFile } from './image-files';
import { checkImageMounts, imageMountDeps, noImageMounts, PreparedImageMounts, prepareImageMounts } from './image-mounts';
import { podUserNamespace } from '../oci/userns';
import { containerName, ContainerRecord, toMetadata } from './model';

/** The log file's absolute path; a path that escapes the pod's log directory is refused. */
export function containerLogPath(logDirectory: string, logPath: string): string {
  if (!logPath) return '';
  if (!logDirectory) throw new InvalidArgumentError('log_path is set but the pod sandbox has no log_directory');
  if (path.isAbsolute(logPath)) throw new InvalidArgumentError(`log_path ${quote(logPath, 256)} must be relative to the pod's log directory`);
  const full = path.resolve(logDirectory, logPath);
  if (!full.startsWith(path.resolve(logDirectory) + path.sep)) {
    throw new InvalidArgumentError(`log_path ${quote(logPath, 256)} leaves the pod's log directory ${logDirectory}`);
  }
  return full;
}

/**
 * CreateContainer: check the pod, reserve the name, resolve the image,
 * prepare the rootfs snapshot, build the spec from image and CRI config,
 * and create the container in containerd. Nothing runs yet.
 */
export async function createContainer(
  ctx: ContainerContext,
  sandboxId: string,
  config: ContainerConfig | undefined,
  sandboxConfigFromRequest: PodSandboxConfig | undefined,
  call: CallContext,
): Promise<string> {
  if (!config?.metadata?.name) throw new InvalidArgumentError('CreateContainer: config.metadata.name is required');
  const imageRef = config.image?.image ?? '';
  if (!imageRef) throw new InvalidArgumentError('CreateContainer: config.image.image is required');
  const sandbox = ctx.sandboxes.require(sandboxId);
  if (sandbox.state !== 'ready') throw new FailedPreconditionError(`CreateContainer: pod sandbox ${sandbox.id} is not ready`);
  const image = ctx.images.store.resolve(imageRef);
  if (!image) throw new NotFoundError(`CreateContainer: image ${quote(imageRef, 256)} not found; pull it first`);
  checkImageMounts(config.mounts, ctx.images.store);

  const sandboxConfig = sandboxConfigFromRequest?.metadata ? sandboxConfigFromRequest : sandbox.config;
  const smd = sandbox.config.metadata!;
  const id = randomBytes(32).toString('hex');
  const name = containerName(config, smd);
  const logPath = containerLogPath(sandbox.config.logDirectory, config.logPath);
  // Read before anything is made: a profile that is not a small regular file is the request's mistake.
  const seccompProfile = await readSeccompProfile(
    config.linux?.securityContext?.seccomp,
    config.linux?.securityContext?.seccompProfilePath ?? '',
    'linux.security_context.seccomp',
  );
  const log = { containerId: id, podSandboxId: sandbox.id, container: config.metadata.name };
  const undo = new UndoStack(ctx.logger, log);
  ctx.names.reserve(name, id);
  undo.push('release name', async () => ctx.names.release(name, id));

  const t0 = performance.now();
  const phases: Record<string, number> = {};
  const mark = (phase: string) => (phases[phase] = +(performance.now() - t0).toFixed(1));
  try {
    // Before any step: an adapter killed from here on leaves a marker the next reconcile pass undoes.
    ctx.pending.begin(id, { sandboxId: sandbox.id });
    const runtime = ctx.config.runtimes[sandbox.runtimeHandler] ?? ctx.config.runtimes[ctx.config.defaultRuntime]!;
    const userns = podUserNamespace(sandbox.config.linux?.securityContext?.namespaceOptions, 'sandbox_config.linux.security_context.namespace_options');
    /** The container object and record, given the image's /etc files and the image mounts made. */
    const describe = async ({ passwd, group }: ImageEtcFiles, imageMounts: PreparedImageMounts) => {
      await ctx.cdi.refreshFor(requestedCdiDevices(config));
      const ns = config.linux?.securityContext?.namespaceOptions;
      const targetPid = ns?.pid === NamespaceMode.TARGET ? ctx.containers.get(ns.targetId)?.pid : undefined;
      if (ns?.pid === NamespaceMode.TARGET && !targetPid) {
        throw new NotFoundError(`CreateContainer: target container ${ns.targetId} for the PID namespace is not running`);
      }
      const hostIpc = sandbox.config.linux?.securityContext?.namespaceOptions?.ipc === NamespaceMode.NODE;
      const privileged = config.linux?.securityContext?.privileged ?? false;
      const { spec, user } = buildContainerSpec({
        containerId: id,
        sandboxId: sandbox.id,
        config,
        sandboxConfig,
        imageName: imageRef,
        imageConfig: image.config.config ?? {},
        imageEtc: { passwd, group },
        sandboxPid: sandbox.pid,
        netnsPath: sandbox.netnsPath,
        targetPid,
        sandboxFiles: sandboxFilePaths(ctx.config.state, sandbox.id, hostIpc),
        lookupDevice: await deviceLookupFor(config.devices.map((d) => d.hostPath)),
        lookupPropagation: propagationLookup(),
        cdiLookup: ctx.cdi.lookup,
        imageMountSources: new Map(imageMounts.records.map((r) => [r.index, r.source])),
        hostDevices: privileged ? await listDevices() : undefined,
        seccompProfile,
        // rro is the handler's runc's to support, not the node's.
        env: { ...ctx.env, recursiveReadOnlyMounts: ctx.runtimeFeatures.get(sandbox.runtimeHandler)?.recursiveReadOnlyMounts ?? false },
      });
      mark('spec');
      const value: ContainerRecord = {
        id,
        sandboxId: sandbox.id,
        name,
        config,
        createdAt: nowNs(),
        startedAt: 0n,
        finishedAt: 0n,
        imageRef,
        imageId: image.id,
        imageDigestRef: image.repoDigests[0] ?? image.id,
        logPath,
        user,
        stopSignal: image.config.config?.StopSignal ?? '',
        runtimeType: runtime.type,
        spec,
        state: 'created',
        exitCode: 0,
        reason: '',
        message: '',
        pid: 0,
        oomKilled: false,
        imageMounts: imageMounts.records,
      };
      const container = {
        id,
        labels: { [LABELS.kind]: KIND_CONTAINER, [LABELS.sandboxId]: sandbox.id, [LABELS.name]: name, ...imageMounts.labels },
        image: image.recordNames[0] ?? imageRef,
        runtime,
        spec,
        extension: { key: EXTENSIONS.containerMetadata, typeUrl: METADATA_TYPE_URLS.container, value: toMetadata(value) },
      };
      return { container, value };
    };
    const usesImageMounts = config.mounts.some((m) => m.image?.image);
    const onRootfs = async (parent: string): Promise<{ value: ContainerRecord }> => {
      const rootfs = { snapshotter: ctx.config.snapshotter, key: id, parent };
      const known = usesImageMounts ? undefined : ctx.imageEtc.get(rootfs.snapshotter, parent);
      if (known) {
        // The spec needs nothing from the new snapshot: the container object first, then the
        // snapshot it names, which it keeps from GC from the start; no lease round trips.
        const { container, value } = await describe(known, noImageMounts());
        await createThenRootfs(ctx.conn, rootfs, { what: 'container', container }, undo, call);
        mark('snapshot');
        return { value };
      }
      return createOnRootfs(ctx.conn, rootfs, {
        what: 'container',
        build: async (mounts, leased) => {
          mark('snapshot');
          const imageMounts = await step('prepare image mounts', () =>
            prepareImageMounts(imageMountDeps(ctx), id, config.mounts, leased, undo),
          );
          const [passwd, group] = await Promise.all([readImageFile(mounts, '/etc/passwd'), readImageFile(mounts, '/etc/group')]);
          ctx.imageEtc.remember(rootfs.snapshotter, parent, { passwd, group });
          return describe({ passwd, group }, imageMounts);
        },
      }, undo, call);
    };
    const { value: record } = await ctx.images.remapped.withParent(image, userns, call, onRootfs);
    mark('container');
    // No status file yet: a container without one is CREATED, also after a restart (fromStored).
    ctx.containers.set(id, record);
    await ctx.pending.end(id);
    ctx.events.emit('event', 'created', record);
    ctx.logger.info('container created', log);
    ctx.logger.debug('container create phases', { ...log, ...phases });
    return id;
  } catch (err) {
    // An undo that failed (containerd unreachable) is retried by the reconcile pass from the marker.
    if (await undo.unwind()) await ctx.pending.end(id);
    else ctx.pending.abandon(id);
    throw err;
  }
}
