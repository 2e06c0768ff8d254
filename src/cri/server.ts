import { Server, ServerCredentials, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../log/logger';

/** True when some process accepts connections on the socket. */
function socketIsLive(socketPath: string): Promise<boolean> {
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
 * The CRI gRPC server on a unix socket. A socket file left by a crashed
 * adapter is replaced; one that another live process still serves is a
 * startup error (two runtimes on one socket would split the kubelet's calls).
 */
export class CriServer {
  private readonly server = new Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
  });

  constructor(
    private readonly socketPath: string,
    private readonly logger: Logger,
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
    await new Promise<void>((resolve, reject) => {
      this.server.bindAsync(`unix://${this.socketPath}`, ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      );
    });
    // grpc-js creates the socket with the process umask; the kubelet runs as root, so group access is enough.
    await fs.chmod(this.socketPath, 0o660);
    this.logger.info('serving CRI', { socket: this.socketPath });
  }

  /** Stops accepting calls, waits up to graceMs for in-flight ones, then cuts the rest. */
  async shutdown(graceMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn('in-flight CRI calls did not finish in time; closing them', { graceMs });
        this.server.forceShutdown();
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
