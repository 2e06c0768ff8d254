import { setMaxListeners } from 'node:events';
import type { RuntimeEnvironment } from './oci';
import { promises as fs } from 'node:fs';
import type { AdapterConfig } from './config/load';
import { ContainerdConnection } from './containerd/connection';
import { abortIngests } from './containerd/content';
import { releaseStaleLeases } from './containerd/leases';
import { PULL_INGEST_PREFIX } from './image/pull';
import { CriServer } from './cri/server';
import { registerCriServices } from './cri/services';
import { ImageService } from './image/service';
import { ImageStore } from './image/store';
import { RegistryClient } from './image/registry';
import type { Logger } from './log/logger';
import { EventMonitor } from './events/monitor';
import { probeNodeEnvironment } from './host/node-environment';
import { HandlerFeatures, probeRuntimeFeatures } from './host/runtime-features';
import { CdiSpecRegistry } from './host/cdi-specs';
import { StatsService } from './stats/service';
import { StreamingService } from './streaming/service';
import { SandboxService } from './sandbox/service';
import { ContainerService } from './container/service';
import { FifoContainerIo } from './container/io';
import { fifoDirectory, keepSpareFifos } from './io';
import { CniConfigWatcher } from './network/cni-config';
import { SandboxIndex } from './sandbox/sandbox-index';
import { enableProcessMetrics } from './metrics';
import { MetricsServer } from './metrics/server';
import { getKey, planReload, ReloadableKey, setKey } from './config/reload';
import { isLoopbackHost, parseHostPort } from './util/host-port';

export type DaemonPhase = 'starting' | 'recovering' | 'serving' | 'draining' | 'stopped';

/** The adapter's object graph: every service built and wired to the others, nothing connected or running yet. */
export interface AdapterServices {
  containerd: ContainerdConnection;
  cni: CniConfigWatcher;
  cdi: CdiSpecRegistry;
  registry: RegistryClient;
  images: ImageService;
  sandboxes: SandboxService;
  containers: ContainerService;
  stats: StatsService;
  streaming: StreamingService;
  events: EventMonitor;
  /** What was measured of this node at start. */
  env: RuntimeEnvironment;
}

/**
 * Builds the object graph. What one domain needs of another is a
 * constructor argument, so the order below is the only order that compiles:
 * the pod index first (images and containers read it), then containers,
 * then the sandbox service that stops and removes them with their pod.
 */
export function buildServices(
  config: AdapterConfig,
  logger: Logger,
  runtimeFeatures: ReadonlyMap<string, HandlerFeatures>,
): AdapterServices {
  const containerd = new ContainerdConnection(
    {
      address: config.containerd.address,
      namespace: config.containerd.namespace,
      callTimeoutMs: config.containerd.callTimeoutSeconds * 1000,
    },
    logger,
  );
  const cni = new CniConfigWatcher(config.cni.confDir, logger);
  const cdi = new CdiSpecRegistry(config.cdi.specDirs, logger);
  const registry = new RegistryClient({
    hostsDir: config.registry.configPath || undefined,
    stallTimeoutMs: config.registry.pullProgressTimeoutSeconds * 1000,
    onWarning: (message) => logger.warn('registry configuration', { message }),
  });
  const pods = new SandboxIndex();
  const images = new ImageService(
    containerd,
    new ImageStore(),
    registry,
    {
      snapshotter: config.snapshotter,
      sandboxImage: config.sandboxImage,
      maxConcurrentDownloads: config.registry.maxConcurrentDownloads,
      leaseExpirySeconds: 3600,
    },
    logger,
    // The kubelet's image GC must not take an image a pod was started from or a container mounts.
    // (Called only by RemoveImage, long after `containers` below exists.)
    (imageId): string | undefined => pods.imageUser(imageId) ?? containers.imageUser(imageId),
  );
  const env = probeNodeEnvironment(config.cgroupDriver);
  const containers: ContainerService = new ContainerService({
    config,
    conn: containerd,
    images,
    sandboxes: pods,
    env,
    runtimeFeatures,
    cdi,
    logger,
    io: new FifoContainerIo(config.state, logger, {
      maxLineBytes: config.logging.maxLineBytes,
      maxBytesPerTurn: config.logging.maxBytesPerTurn,
      drainTimeoutMs: config.logging.drainTimeoutSeconds * 1000,
    }),
  });
  const sandboxes = new SandboxService({ config, conn: containerd, images, cni, env, logger, sandboxes: pods, containers });
  const stats = new StatsService({
    conn: containerd,
    snapshotter: config.snapshotter,
    snapshotterMountpoint: async (call) => (await images.snapshotterLocation(call)).mountpoint,
    cgroupDriver: config.cgroupDriver,
    cgroupV2: env.cgroup?.cgroupV2 ?? false,
    logger,
  });
  const streaming = new StreamingService({ ...config.streaming, containers, sandboxes, logger });
  // Each domain keeps its own view in step with containerd's events (and reconciles after a gap).
  const events = new EventMonitor(containerd, logger);
  images.watch(events);
  sandboxes.watch(events);
  containers.watch(events);
  return { containerd, cni, cdi, registry, images, sandboxes, containers, stats, streaming, events, env };
}

/**
 * The adapter's lifecycle over the object graph. The CRI socket is bound
 * only after everything the RPCs answer from is in place, so the kubelet
 * never sees a half-built view; containerd being down is not a reason to
 * refuse to start (Status reports it and the connection recovers by itself).
 */
export class Daemon {
  private phaseValue: DaemonPhase = 'starting';
  private readonly drain = new AbortController();
  private services: AdapterServices | undefined;
  private server: CriServer | undefined;
  private recoveredFlag = false;
  private readonly metrics = new MetricsServer((message, fields) => this.logger.warn(message, fields));

  constructor(
    private readonly config: AdapterConfig,
    private readonly logger: Logger,
    private readonly adapterVersion: string,
  ) {}

  get phase(): DaemonPhase {
    return this.phaseValue;
  }

  private setPhase(phase: DaemonPhase): void {
    this.phaseValue = phase;
    this.logger.info('daemon phase', { phase });
  }

  async start(): Promise<void> {
    // Every in-flight CRI call listens on the drain signal; hundreds at once are normal.
    setMaxListeners(0, this.drain.signal);
    const { config, logger } = this;
    await fs.mkdir(config.root, { recursive: true, mode: 0o700 });
    await fs.mkdir(config.state, { recursive: true, mode: 0o711 });
    enableProcessMetrics();
    await this.setMetricsAddress(config.metrics.address);

    // Host probing comes first: what each handler's runc supports shapes the specs the services build.
    const runtimeFeatures = await probeRuntimeFeatures(config.runtimes);
    for (const [handler, f] of runtimeFeatures) {
      logger.info('runtime handler features', { handler, recursiveReadOnlyMounts: f.recursiveReadOnlyMounts, notes: f.notes });
    }
    const services = buildServices(config, logger, runtimeFeatures);
    this.services = services;
    const { containerd } = services;
    await containerd.start();
    if (!containerd.ready) {
      logger.warn('starting without containerd; will report RuntimeReady=false until it answers', {
        reason: containerd.notReadyReason,
      });
    }
    await services.cni.start();
    await services.cdi.start();
    await services.streaming.start();

    this.setPhase('recovering');
    const recoverLater = () =>
      this.recover(services).catch((err: unknown) => {
        this.logger.error('recovery failed; retrying when containerd reconnects', { error: (err as Error).message });
        containerd.once('ready', recoverLater);
      });
    if (containerd.ready) await this.recover(services);
    else containerd.once('ready', recoverLater);
    // After a gap in the event stream (containerd restarted, or the connection was lost), leases
    // whose delete failed meanwhile go; the first resync comes with recovery's own subscription.
    services.events.on('resync', () => {
      if (this.recoveredFlag) void this.releaseLeftoverWork(false);
    });

    this.server = new CriServer(config.listen, logger, { rewriteOldClients: config.oldGrpcClients });
    registerCriServices(
      this.server,
      {
        config,
        containerd,
        cni: services.cni,
        images: services.images,
        sandboxes: services.sandboxes,
        containers: services.containers,
        stats: services.stats,
        runtimeFeatures,
        streaming: services.streaming,
        logger,
        adapterVersion: this.adapterVersion,
        env: services.env,
        recovered: () => this.recoveredFlag,
      },
      this.drain.signal,
    );
    await this.server.listen();
    this.setPhase('serving');
  }

  /**
   * Rebuilds in-memory state from containerd. Run before the socket is
   * bound when containerd is up, so the kubelet never sees a half-built
   * view; when containerd is down at start, the socket is bound first
   * (Version and Status must answer) and this runs once containerd comes.
   */
  private async recover({ images, sandboxes, containers, events }: AdapterServices): Promise<void> {
    await images.load({});
    await sandboxes.recover({});
    await containers.recover({});
    // From here on containers' and execs' FIFOs are renamed from ones made ahead (io/fifo.ts).
    await keepSpareFifos(fifoDirectory(this.config.state));
    // What is left of an earlier process's work, now that recovery adopted or removed what it guarded.
    await this.releaseLeftoverWork(true);
    // Subscribing emits a resync, which reconciles what happened between the listing above and now.
    events.start();
    this.recoveredFlag = true;
    this.logger.info('state recovered from containerd');
  }

  /**
   * Releases leases no call of this process holds (an earlier process's, or
   * ones whose delete failed while containerd was down) and, at start only
   * (no pull runs yet), aborts an earlier process's partial pull ingests.
   */
  private async releaseLeftoverWork(atStart: boolean): Promise<void> {
    const conn = this.services!.containerd;
    try {
      const ingests = atStart ? await abortIngests(conn, PULL_INGEST_PREFIX) : 0;
      const leases = await releaseStaleLeases(conn);
      if (leases || ingests) this.logger.info('released leftovers of interrupted work', { leases, ingests });
    } catch (err) {
      this.logger.warn('releasing leftover leases failed; retrying after the next gap', { error: (err as Error).message });
    }
  }

  private async setMetricsAddress(address: string): Promise<void> {
    await this.metrics.setAddress(address);
    if (!address) return;
    const host = parseHostPort(address)?.host ?? '';
    const fields = { address, port: this.metrics.port, path: '/metrics' };
    if (isLoopbackHost(host)) this.logger.info('serving metrics', fields);
    else this.logger.warn('serving metrics on a non-loopback address; anything that reaches it can read them', fields);
  }

  /**
   * Live reload (SIGHUP): applies the keys that can change while running,
   * one by one, logging each; keys that need a restart are named and left
   * as they are. A key whose application fails (a metrics address already
   * in use) keeps its old value.
   */
  async reload(next: AdapterConfig): Promise<void> {
    const plan = planReload(this.config, next);
    if (plan.refuse.length) {
      this.logger.warn('configuration keys changed that need a restart; not applied', { keys: plan.refuse });
    }
    if (plan.apply.length === 0) {
      this.logger.info('configuration reloaded; nothing to apply');
      return;
    }
    for (const key of plan.apply) {
      const value = getKey(next, key);
      try {
        await this.applyKey(key, next);
        setKey(this.config, key, value);
        this.logger.info('configuration key applied', { key, value });
      } catch (err) {
        this.logger.error('configuration key not applied; keeping the running value', {
          key,
          value: getKey(this.config, key),
          error: (err as Error).message,
        });
      }
    }
  }

  private async applyKey(key: ReloadableKey, next: AdapterConfig): Promise<void> {
    switch (key) {
      case 'logLevel':
        this.logger.level = next.logLevel;
        return;
      case 'registry.configPath':
        this.services?.registry.setHostsDir(next.registry.configPath || undefined);
        return;
      case 'registry.pullProgressTimeoutSeconds':
        this.services?.registry.setStallTimeout(next.registry.pullProgressTimeoutSeconds * 1000);
        return;
      case 'cni.confDir':
        await this.services?.cni.setConfDir(next.cni.confDir);
        return;
      case 'metrics.address':
        await this.setMetricsAddress(next.metrics.address);
        return;
      case 'cni.binDirs':
      case 'cni.pluginTimeoutSeconds':
      case 'execSync.maxOutputBytes':
        // Read from the configuration object at each use.
        return;
    }
  }

  async stop(): Promise<void> {
    if (this.phaseValue === 'draining' || this.phaseValue === 'stopped') return;
    this.setPhase('draining');
    await this.server?.shutdown(this.config.shutdownGraceSeconds * 1000);
    this.drain.abort();
    const s = this.services;
    await s?.streaming.stop();
    await s?.sandboxes.close();
    s?.cni.stop();
    s?.cdi.stop();
    s?.events.stop();
    s?.containerd.close();
    s?.registry.close();
    await this.metrics.close();
    this.setPhase('stopped');
  }
}
