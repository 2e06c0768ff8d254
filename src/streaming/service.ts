/**
 * Exec, Attach and PortForward: URLs handed out by the CRI calls, and what
 * runs when a client connects to one.
 */
import type { ContainerService } from '../container/service';
import type { Logger } from '../log/logger';
import type { SandboxService } from '../sandbox/service';
import { runAttach } from './attach';
import { runExec } from './exec';
import { NetnsDialer, podDialer, servePortForward } from './port-forward';
import { serveRemoteCommand } from './remote-command';
import { AttachStreamRequest, ExecStreamRequest, StreamingServer, StreamRequest } from './server';
import type { SpdySession } from './spdy/session';

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
      handle: (request, session, protocol) => this.handle(request, session, protocol),
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

  portForwardUrl(podSandboxId: string): string {
    return this.server.urlFor({ kind: 'portforward', podSandboxId });
  }

  private async handle(request: StreamRequest, session: SpdySession, protocol: string): Promise<void> {
    switch (request.kind) {
      case 'exec': {
        const describe = `[${request.cmd.join(' ')}]`;
        await serveRemoteCommand(session, protocol, { ...request, describe }, async (streams) => {
          const { containers } = this.deps;
          const record = containers.running(request.containerId);
          this.deps.logger.debug('exec stream', { containerId: record.id, cmd: request.cmd, tty: request.tty });
          return runExec((opts, call) => containers.startExec(record.id, opts, call), request, streams);
        });
        return;
      }
      case 'attach':
        await serveRemoteCommand(session, protocol, { ...request, describe: 'attach' }, async (streams) => {
          const record = this.deps.containers.running(request.containerId);
          return runAttach(record, this.deps.containers.attach(record.id), streams);
        });
        return;
      case 'portforward': {
        const sandbox = this.deps.sandboxes.get(request.podSandboxId);
        if (!sandbox || sandbox.state !== 'ready') {
          session.close();
          return;
        }
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
        await servePortForward(session, podDialer(helper));
        return;
      }
    }
  }
}
