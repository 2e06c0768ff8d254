/**
 * Exec, Attach and PortForward: URLs handed out by the CRI calls, and what
 * runs when a client connects to one.
 */
import type { ContainerService } from '../container/service';
import type { Logger } from '../log/logger';
import type { SandboxService } from '../sandbox/service';
import { runAttach } from './attach';
import { runExec } from './exec';
import { Dialer, NetnsDialer, podDialer, servePortForward, serveWebSocketPortForward } from './port-forward';
import { RemoteCommandChannels, RemoteCommandOptions, serveRemoteCommand, spdyChannels, webSocketChannels } from './remote-command';
import { AttachStreamRequest, ExecStreamRequest, StreamingServer, StreamRequest, StreamTransport } from './server';

export interface StreamingServiceDeps {
  address: string;
  port: number;
  containers: ContainerService;
  sandboxes: SandboxService;
  logger: Logger;
}

export class StreamingService {
  private readonly server: StreamingServer;
  /** One namespace helper per pod, while it is used. */
  private readonly dialers = new Map<string, NetnsDialer>();

  constructor(private readonly deps: StreamingServiceDeps) {
    // A port-forward helper lives in the pod's network namespace: it goes before the namespace does.
    deps.sandboxes.onNetworkTeardown((id) => this.releasePod(id));
    this.server = new StreamingServer({
      address: deps.address,
      port: deps.port,
      logger: deps.logger,
      handle: (request, transport) => this.handle(request, transport),
    });
  }

  start(): Promise<void> {
    return this.server.start();
  }

  stop(): Promise<void> {
    for (const d of this.dialers.values()) d.close();
    this.dialers.clear();
    return this.server.stop();
  }

  /** Ends the pod's port-forward helper, if it has one (the pod is stopping). */
  private releasePod(podSandboxId: string): void {
    this.dialers.get(podSandboxId)?.close();
    this.dialers.delete(podSandboxId);
  }

  execUrl(request: Omit<ExecStreamRequest, 'kind'>): string {
    return this.server.urlFor({ kind: 'exec', ...request });
  }

  attachUrl(request: Omit<AttachStreamRequest, 'kind'>): string {
    return this.server.urlFor({ kind: 'attach', ...request });
  }

  portForwardUrl(podSandboxId: string, ports: number[]): string {
    return this.server.urlFor({ kind: 'portforward', podSandboxId, ports: [...ports] });
  }

  private async handle(request: StreamRequest, transport: StreamTransport): Promise<void> {
    const conn = transport.kind === 'spdy' ? transport.session : transport.channels;
    const channels = (opts: RemoteCommandOptions): Promise<RemoteCommandChannels> =>
      transport.kind === 'spdy' ? spdyChannels(transport.session, transport.protocol, opts) : Promise.resolve(webSocketChannels(transport.channels, opts));
    switch (request.kind) {
      case 'exec': {
        const opts = { ...request, describe: `[${request.cmd.join(' ')}]` };
        await serveRemoteCommand(conn, await channels(opts), transport.protocol, opts, async (streams) => {
          const { containers } = this.deps;
          const record = containers.running(request.containerId);
          this.deps.logger.debug('exec stream', { containerId: record.id, cmd: request.cmd, tty: request.tty });
          return runExec((opts, call) => containers.startExec(record.id, opts, call), request, streams);
        });
        return;
      }
      case 'attach': {
        const opts = { ...request, describe: 'attach' };
        await serveRemoteCommand(conn, await channels(opts), transport.protocol, opts, async (streams) => {
          const record = this.deps.containers.running(request.containerId);
          return runAttach(record, this.deps.containers.attach(record.id), streams);
        });
        return;
      }
      case 'portforward': {
        const dial = this.podDialer(request.podSandboxId);
        if (!dial) return;
        if (transport.kind === 'spdy') await servePortForward(transport.session, dial);
        else await serveWebSocketPortForward(transport.channels, transport.ports, dial);
        return;
      }
    }
  }

  /** How to reach ports of a ready pod (its namespace helper, started on first use); undefined when it is not ready. */
  private podDialer(podSandboxId: string): Dialer | undefined {
    const sandbox = this.deps.sandboxes.get(podSandboxId);
    if (!sandbox || sandbox.state !== 'ready') return undefined;
    let helper: NetnsDialer | undefined;
    if (sandbox.netnsPath) {
      helper = this.dialers.get(sandbox.id);
      if (!helper) {
        helper = new NetnsDialer(sandbox.netnsPath);
        this.dialers.set(sandbox.id, helper);
      }
    }
    // Pods stopped behind our back (not through StopPodSandbox) must not keep a helper either.
    for (const id of this.dialers.keys()) if (this.deps.sandboxes.get(id)?.state !== 'ready') this.releasePod(id);
    return podDialer(helper);
  }
}
