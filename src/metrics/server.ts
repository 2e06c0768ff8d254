import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../util/host-port';
import { registry } from './index';

/**
 * Serves GET /metrics in the Prometheus text format. Off while the address
 * is empty; `setAddress` moves it (live reload) by binding the new address
 * before closing the old one, so a bad address leaves the old one serving.
 */
export class MetricsServer {
  private server: http.Server | undefined;
  private current = '';

  constructor(private readonly onError: (message: string, fields: Record<string, unknown>) => void = () => undefined) {}

  get address(): string {
    return this.current;
  }

  /** The bound port (useful with port 0), or undefined when off. */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  async setAddress(address: string): Promise<void> {
    if (address === this.current && (address === '' || this.server)) return;
    let next: http.Server | undefined;
    if (address !== '') {
      const hp = parseHostPort(address);
      if (!hp) throw new Error(`metrics.address "${address.slice(0, 100)}" is not host:port`);
      next = http.createServer((req, res) => void this.handle(req, res));
      // A scraper that leaves a connection open must not hold a restart up.
      next.keepAliveTimeout = 5000;
      await new Promise<void>((resolve, reject) => {
        next!.once('error', reject);
        next!.listen(hp.port, hp.host, () => {
          next!.off('error', reject);
          resolve();
        });
      });
      next.on('error', (err) => this.onError('metrics server error', { error: err.message }));
    }
    const old = this.server;
    this.server = next;
    this.current = address;
    if (old) await closeServer(old);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'Content-Type': 'text/plain', Allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    try {
      const body = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`collecting metrics failed: ${(err as Error).message}\n`);
    }
  }

  async close(): Promise<void> {
    const old = this.server;
    this.server = undefined;
    this.current = '';
    if (old) await closeServer(old);
  }
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
