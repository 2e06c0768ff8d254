import { promises as fs } from 'node:fs';
import type { AdapterConfig } from './config/load';
import { ContainerdConnection } from './containerd/connection';
import { CriServer } from './cri/server';
import { registerCriServices } from './cri/services';
import type { Logger } from './log/logger';
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

    this.setPhase('recovering');
    // Sandboxes and containers are rebuilt from containerd here once they exist.

    this.server = new CriServer(config.listen, logger);
    registerCriServices(
      this.server,
      { config, containerd: this.containerd, cni: this.cni, logger, adapterVersion: this.adapterVersion },
      this.drain.signal,
    );
    await this.server.listen();
    this.setPhase('serving');
  }

  async stop(): Promise<void> {
    if (this.phaseValue === 'draining' || this.phaseValue === 'stopped') return;
    this.setPhase('draining');
    await this.server?.shutdown(this.config.shutdownGraceSeconds * 1000);
    this.drain.abort();
    this.cni?.stop();
    this.containerd?.close();
    this.setPhase('stopped');
  }
}
