import { ConnectionInjector, Server, ServerCredentials, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sortConnection } from '../grpc/authority-rewrite';
import type { Logger } from '../log/logger';
import { criConnections } from '../metrics';

/** True when some process accepts connections on the socket. */
export function socketIsLive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class SocketInUseError extends Error {}

/**
 * How long a new connection may stay without its first request before it is
 * served through the rewriting wrapper anyway (kubelets and crictl call at
 * once; a channel dialled ahead and left idle would otherwise wait).
 */
const SORT_WITHIN_MS = 2000;

/**
 * The CRI gRPC server on a unix socket. A socket file left by a crashed
 * adapter is replaced; one that another live process still serves is a
 * startup error (two runtimes on one socket would split the kubelet's calls).
 *
 * The adapter accepts the socket's connections itself and hands each to
 * grpc-js (its connection injector) after reading its first request: natively
 * for clients that need nothing, through an AuthorityRewritingSocket for gRPC
 * clients that send the socket path as `:authority` (grpc-go < 1.57: kubelets
 * up to 1.28); see src/grpc/authority-rewrite.ts.
 */
export class CriServer {
  private readonly server = new Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    // Nothing here serves channelz, and grpc-js's per-call channelz bookkeeping (a handler, a
    // listener, counters and timestamps for each call) was a visible share of a Status call's CPU.
    'grpc.enable_channelz': 0,
  });

  private readonly listener = net.createServer();
  private injector: ConnectionInjector | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly logger: Logger,
    /** Off (oldGrpcClients: false): connections go to grpc-js as they are, without the rewriter's JS stream between. */
    private readonly options: { rewriteOldClients: boolean } = { rewriteOldClients: true },
  ) {}

  addService(definition: ServiceDefinition, impl: UntypedServiceImplementation): void {
    this.server.addService(definition, impl);
  }

  async listen(): Promise<void> {
    await fs.mkdir(path.dirname(this.socketPath), { recursive: true, mode: 0o750 });
    const existing = await fs.lstat(this.socketPath).catch(() => undefined);
    if (existing) {
      if (!existing.isSocket()) {
        throw new SocketInUseError(`${this.socketPath} exists and is not a socket; refusing to replace it`);
      }
      if (await socketIsLive(this.socketPath)) {
        throw new SocketInUseError(`another process is serving on ${this.socketPath}; stop it first or choose another --listen`);
      }
      this.logger.info('removing stale socket', { socket: this.socketPath });
      await fs.unlink(this.socketPath);
    }
    const injector = this.server.createConnectionInjector(ServerCredentials.createInsecure());
    this.injector = injector;
    this.listener.on('connection', (socket) => {
      if (!this.options.rewriteOldClients) {
        injector.injectConnection(socket);
        return;
      }
      sortConnection(socket, {
        serve: (connection, how) => {
          criConnections.accepted(how);
          injector.injectConnection(connection);
        },
        onProtocolError: (err) =>
          this.logger.warn('closing a CRI connection whose header blocks broke HTTP/2 after a rewrite', { reason: err.message }),
        sortWithinMs: SORT_WITHIN_MS,
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(this.socketPath, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
    // The socket is created with the process umask; the kubelet runs as root, so group access is enough.
    await fs.chmod(this.socketPath, 0o660);
    this.logger.info('serving CRI', { socket: this.socketPath });
  }

  /** Stops accepting calls, waits up to graceMs for in-flight ones, then cuts the rest. */
  async shutdown(graceMs: number): Promise<void> {
    this.listener.close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn('in-flight CRI calls did not finish in time; closing them', { graceMs });
        this.server.forceShutdown();
        this.injector?.destroy();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await fs.unlink(this.socketPath).catch(() => undefined);
  }
}
