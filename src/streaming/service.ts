/**
 * Exec, Attach and PortForward: URLs handed out by the CRI calls, and what
 * runs when a client connects to one.
 */
import type { ContainerService } from '../container/service';
import type { ContainerRecord } from '../container/model';
import { FailedPreconditionError, NotFoundError } from '../errors';
import type { Logger } from '../log/logger';
import type { SandboxService } from '../sandbox/service';
import { runAttach } from './attach';
import { runExec } from './exec';
import { podDialer, servePortForward } from './port-forward';
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

  constructor(private readonly deps: StreamingServiceDeps) {
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
    return this.server.stop();
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

  private runningContainer(id: string): ContainerRecord {
    const record = this.deps.containers.get(id);
    if (!record) throw new NotFoundError(`container ${id} not found`);
    if (record.state !== 'running') throw new FailedPreconditionError(`container ${id} is not running`);
    return record;
  }

  private async handle(request: StreamRequest, session: SpdySession, protocol: string): Promise<void> {
    switch (request.kind) {
      case 'exec': {
        const describe = `[${request.cmd.join(' ')}]`;
        await serveRemoteCommand(session, protocol, { ...request, describe }, async (streams) => {
          const record = this.runningContainer(request.containerId);
          this.deps.logger.debug('exec stream', { containerId: record.id, cmd: request.cmd, tty: request.tty });
          return runExec(this.deps.containers.ctx, record, request, streams);
        });
        return;
      }
      case 'attach':
        await serveRemoteCommand(session, protocol, { ...request, describe: 'attach' }, async (streams) => {
          const record = this.runningContainer(request.containerId);
          return runAttach(this.deps.containers.ctx, record, streams);
        });
        return;
      case 'portforward': {
        const sandbox = this.deps.sandboxes.get(request.podSandboxId);
        if (!sandbox || sandbox.state !== 'ready') {
          session.close();
          return;
        }
        await servePortForward(session, podDialer({ netnsPath: sandbox.netnsPath }));
        return;
      }
    }
  }
}
