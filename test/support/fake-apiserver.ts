/**
 * Just enough of a Kubernetes API server for `kubectl exec` and
 * `kubectl attach` and `kubectl port-forward` to reach a CRI runtime's streaming server the way
 * they do in a cluster: kubectl reads the pod, then upgrades a POST to
 * .../exec or .../portforward; here (as the kubelet does) that request is
 * turned into a CRI Exec or PortForward call and the upgraded connection is
 * passed through, byte for byte, to the URL the runtime returned.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { CriClient } from './cri-client';

export interface FakePod {
  namespace: string;
  name: string;
  podSandboxId: string;
  /** container name → CRI container ID */
  containers: Record<string, string>;
  /** Containers created with stdin (kubectl attach -i checks the pod spec for it). */
  stdinContainers?: string[];
}

function json(res: http.ServerResponse, body: unknown, code = 200): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function podObject(p: FakePod): unknown {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: { name: p.name, namespace: p.namespace, uid: p.podSandboxId },
    spec: {
      containers: Object.keys(p.containers).map((name) => ({ name, image: 'busybox', stdin: p.stdinContainers?.includes(name) ?? false })),
    },
    status: { phase: 'Running' },
  };
}

const DISCOVERY_V1 = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [
    { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
    { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
    { name: 'pods/attach', singularName: '', namespaced: true, kind: 'PodAttachOptions', verbs: ['create', 'get'] },
    { name: 'pods/portforward', singularName: '', namespaced: true, kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
  ],
};

export class FakeApiServer {
  private readonly server: http.Server;
  private readonly pods = new Map<string, FakePod>();
  /** CRI calls made for upgrades, for tests to look at. */
  readonly criCalls: string[] = [];
  /**
   * Upgrades passed on, with what the runtime answered: "websocket exec
   * offered=v5.channel.k8s.io -> 101 v5.channel.k8s.io" or "spdy/3.1 portforward -> 101".
   */
  readonly upgrades: string[] = [];
  /** Upgraded connections: the HTTP server no longer closes these itself. */
  private readonly tunnels = new Set<net.Socket>();

  constructor(private readonly cri: CriClient) {
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.onUpgrade(req, socket, head).catch((err: unknown) => {
        socket.end(`HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n${(err as Error).message}\n`);
      });
    });
  }

  addPod(p: FakePod): void {
    this.pods.set(`${p.namespace}/${p.name}`, p);
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    for (const s of this.tunnels) s.destroy();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/api') return json(res, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
    if (url.pathname === '/apis') return json(res, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
    if (url.pathname === '/api/v1') return json(res, DISCOVERY_V1);
    if (url.pathname === '/version') return json(res, { major: '1', minor: '32', gitVersion: 'v1.32.0' });
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname);
    const pod = m ? this.pods.get(`${m[1]}/${m[2]}`) : undefined;
    if (pod && req.method === 'GET') return json(res, podObject(pod));
    // Anything else (including an exec POST without Upgrade: kubectl's WebSocket probe is an upgrade too) is refused.
    json(res, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `not served: ${req.method} ${url.pathname}`, code: 404 }, 404);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach|portforward)$/.exec(url.pathname);
    const pod = m ? this.pods.get(`${m[1]}/${m[2]}`) : undefined;
    if (!m || !pod) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (upgrade !== 'spdy/3.1' && upgrade !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    // WebSockets go through to the runtime as well, as with the API server's and
    // kubelet's ExtendWebSocketsToKubelet: the runtime's streaming server answers them.
    let target: string;
    if (m[3] === 'exec' || m[3] === 'attach') {
      const q = url.searchParams;
      const name = q.get('container') ?? Object.keys(pod.containers)[0]!;
      const flag = (k: string) => q.get(k) === 'true' || q.get(k) === '1';
      const request = {
        containerId: pod.containers[name]!,
        cmd: q.getAll('command'),
        tty: flag('tty'),
        stdin: flag('stdin'),
        stdout: flag('stdout'),
        stderr: flag('stderr'),
      };
      if (m[3] === 'exec') {
        this.criCalls.push(`Exec ${JSON.stringify(request.cmd)}`);
        target = (await this.cri.runtime.exec(request)).url;
      } else {
        this.criCalls.push(`Attach ${name}`);
        target = (await this.cri.runtime.attach(request)).url;
      }
    } else {
      const ports = url.searchParams.getAll('ports').map(Number);
      this.criCalls.push(`PortForward ${ports.join(',')}`);
      target = (await this.cri.runtime.portForward({ podSandboxId: pod.podSandboxId, port: ports })).url;
    }
    // Pass the upgrade on as the kubelet does: same headers, the runtime's path.
    const t = new URL(target);
    const upstream = net.connect({ host: t.hostname, port: Number(t.port) });
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', resolve);
      upstream.once('error', reject);
    });
    const lines = [`${req.method} ${t.pathname} HTTP/1.1`, `Host: ${t.host}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i]!.toLowerCase() === 'host') continue;
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    }
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) upstream.write(head);
    for (const s of [socket, upstream]) {
      this.tunnels.add(s);
      s.once('close', () => this.tunnels.delete(s));
    }
    const offered = req.headers['sec-websocket-protocol'] ?? req.headers['x-stream-protocol-version'] ?? '';
    upstream.once('data', (first: Buffer) => {
      const head = first.toString('latin1').split('\r\n\r\n')[0] ?? '';
      const status = /^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? '?';
      const chosen = /\r\n(?:sec-websocket-protocol|x-stream-protocol-version):\s*([^\r]*)/i.exec(head)?.[1] ?? '';
      this.upgrades.push(`${upgrade} ${m[3]} offered=${String(offered)} -> ${status} ${chosen}`.trim());
    });
    upstream.pipe(socket);
    socket.pipe(upstream);
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  }
}
