import { setMaxListeners } from 'node:events';
import { promises as fs } from 'node:fs';
import type { AdapterConfig } from './config/load';
import { ContainerdConnection } from './containerd/connection';
import { CriServer } from './cri/server';
import { registerCriServices } from './cri/services';
import { ImageService } from './image/service';
import { ImageStore } from './image/store';
import { RegistryClient } from './image/registry';
import type { Logger } from './log/logger';
import { EventMonitor } from './events/monitor';
import { probeNodeEnvironment } from './host/node-environment';
import { StatsService } from './stats/service';
import { StreamingService } from './streaming/service';
import { SandboxService } from './sandbox/service';
import { ContainerService } from './container/service';
import { FifoContainerIo } from './container/io';
import { CniConfigWatcher } from './network/cni-config';

export type DaemonPhase = 'starting' | 'recovering' | 'serving' | 'draining' | 'stopped';

/**
 * The adapter's lifecycle. The CRI socket is bound only after everything
 * the RPCs answer from is in place, so the kubelet never sees a half-built
 * view; containerd being down is not a reason to refuse to start (Status
 * reports it and the connection recovers by itself).
 */
export class Daemon {
  private phaseValue: DaemonPhase = 'starting';
  private readonly drain = new AbortController();
  private containerd: ContainerdConnection | undefined;
  private cni: CniConfigWatcher | undefined;
  private server: CriServer | undefined;
  private registry: RegistryClient | undefined;
  private recoveredFlag = false;
  private events: EventMonitor | undefined;
  private streaming: StreamingService | undefined;

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

    this.containerd = new ContainerdConnection(
      {
        address: config.containerd.address,
        namespace: config.containerd.namespace,
        callTimeoutMs: config.containerd.callTimeoutSeconds * 1000,
      },
      logger,
    );
    await this.containerd.start();
    if (!this.containerd.ready) {
      logger.warn('starting without containerd; will report RuntimeReady=false until it answers', {
        reason: this.containerd.notReadyReason,
      });
    }

    this.cni = new CniConfigWatcher(config.cni.confDir, logger);
    await this.cni.start();

    this.registry = new RegistryClient({
      hostsDir: config.registry.configPath || undefined,
      stallTimeoutMs: config.registry.pullProgressTimeoutSeconds * 1000,
      onWarning: (message) => logger.warn('registry configuration', { message }),
    });
    const images = new ImageService(
      this.containerd,
      new ImageStore(),
      this.registry,
      {
        snapshotter: config.snapshotter,
        sandboxImage: config.sandboxImage,
        maxConcurrentDownloads: config.registry.maxConcurrentDownloads,
        leaseExpirySeconds: 3600,
      },
      logger,
    );

    const env = probeNodeEnvironment(config.cgroupDriver);
    const sandboxes = new SandboxService({ config, conn: this.containerd, images, cni: this.cni, env, logger });
    const containers = new ContainerService({
      config,
      conn: this.containerd,
      images,
      sandboxes,
      env,
      logger,
      io: new FifoContainerIo(config.state, logger, {
        maxLineBytes: config.logging.maxLineBytes,
        maxBytesPerTurn: config.logging.maxBytesPerTurn,
        drainTimeoutMs: config.logging.drainTimeoutSeconds * 1000,
      }),
    });
    const stats = new StatsService({
      conn: this.containerd,
      snapshotter: config.snapshotter,
      snapshotterMountpoint: async (call) => (await images.snapshotterLocation(call)).mountpoint,
      cgroupDriver: config.cgroupDriver,
      cgroupV2: env.cgroup?.cgroupV2 ?? false,
      logger,
    });
    this.streaming = new StreamingService({ ...config.streaming, containers, sandboxes, logger });
    await this.streaming.start();
    this.events = new EventMonitor(this.containerd, logger);
    sandboxes.watch(this.events);
    containers.watch(this.events);

    this.setPhase('recovering');
    const recoverLater = () =>
      this.recover(images, sandboxes, containers).catch((err: unknown) => {
        this.logger.error('recovery failed; retrying when containerd reconnects', { error: (err as Error).message });
        this.containerd?.once('ready', recoverLater);
      });
    if (this.containerd.ready) await this.recover(images, sandboxes, containers);
    else this.containerd.once('ready', recoverLater);
    // After any gap in the event stream (a containerd restart, however quick, or a lost
    // connection) containerd may hold other images than before: reload the view. The first
    // resync comes with the subscription recovery makes right after loading them.
    let resyncs = 0;
    this.events.on('resync', () => {
      if (resyncs++ === 0 || !this.recoveredFlag) return;
      images.load({}).catch((err: unknown) => logger.warn('image resync failed', { error: (err as Error).message }));
    });

    this.server = new CriServer(config.listen, logger);
    registerCriServices(
      this.server,
      {
        config,
        containerd: this.containerd,
        cni: this.cni,
        images,
        sandboxes,
        containers,
        stats,
        streaming: this.streaming,
        logger,
        adapterVersion: this.adapterVersion,
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
  private async recover(images: ImageService, sandboxes: SandboxService, containers: ContainerService): Promise<void> {
    await images.load({});
    await sandboxes.recover({});
    await containers.recover({});
    // Subscribing emits a resync, which reconciles what happened between the listing above and now.
    this.events!.start();
    this.recoveredFlag = true;
    this.logger.info('state recovered from containerd');
  }

  async stop(): Promise<void> {
    if (this.phaseValue === 'draining' || this.phaseValue === 'stopped') return;
    this.setPhase('draining');
    await this.server?.shutdown(this.config.shutdownGraceSeconds * 1000);
    this.drain.abort();
    await this.streaming?.stop();
    this.cni?.stop();
    this.events?.stop();
    this.containerd?.close();
    this.registry?.close();
    this.setPhase('stopped');
  }
}
