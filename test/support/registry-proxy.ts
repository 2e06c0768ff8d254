/**
 * A small HTTP reverse proxy in front of a real (local, plain-http) registry,
 * for tests that need a registry to misbehave or to be watched:
 *
 *   const proxy = await startRegistryProxy({ upstream: h.registry.host });
 *   proxy.count('GET', '/blobs/')            // requests seen (before auth)
 *   proxy.auth = { service: 'test-proxy' }   // require a Bearer token from its own /token endpoint
 *   proxy.blobs = (digest) => ({ corrupt: true })   // or stall / delayMs / gate
 *   await proxy.stop();
 *
 * Every behaviour can be changed between (or during) pulls; nothing is cached.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BlobBehaviour {
  /** Flip one byte in the middle of the body (length unchanged). */
  corrupt?: boolean;
  /** Send the response headers, then nothing, until the client goes away. */
  stall?: boolean;
  /** Send the headers, then wait this long before the body. */
  delayMs?: number;
  /** Send the headers, then wait for this promise before the body. */
  gate?: Promise<void>;
  /** Send the body in pieces of this many bytes, one every `intervalMs` (slow but never silent). */
  throttle?: { chunkBytes: number; intervalMs: number };
}

export interface BearerAuth {
  /** The `service` parameter of the challenge and the token request. */
  service: string;
}

export interface ProxyRequest {
  method: string;
  /** Path with query, as received. */
  url: string;
  /** Status sent to the client (0 while in flight or when the client left first). */
  status: number;
  /** The client went away before the response was complete. */
  aborted: boolean;
}

export interface RegistryProxy {
  /** 127.0.0.1:port */
  host: string;
  port: number;
  upstream: string;
  /** Registry API requests seen (token requests are counted separately). */
  readonly requests: ProxyRequest[];
  /** Requests to the token endpoint. */
  tokenRequests: number;
  /** When set, every /v2/ request needs `Authorization: Bearer <token issued here>` for its repository. */
  auth: BearerAuth | undefined;
  /** Per-blob misbehaviour for GET /v2/<repo>/blobs/<digest>; undefined passes through. */
  blobs: ((digest: string) => BlobBehaviour | undefined) | undefined;
  /** Emits 'request' (ProxyRequest) as each registry request arrives. */
  readonly events: EventEmitter;
  /** Requests matching method and a substring of the URL. */
  count(method: string, urlContains: string): number;
  /** Forgets the request log and token count. */
  reset(): void;
  /** Waits until a request matching method/substring has arrived. */
  waitForRequest(method: string, urlContains: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const BLOB_PATH = /^\/v2\/(.+)\/blobs\/([a-z0-9]+:[a-f0-9]+)$/;
const REPO_PATH = /^\/v2\/(.+)\/(?:manifests|blobs|tags)\//;

function deny(res: http.ServerResponse, challenge: string): void {
  const body = JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
  res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': challenge, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export async function startRegistryProxy(opts: { upstream: string; port?: number }): Promise<RegistryProxy> {
  const [upHost, upPort] = opts.upstream.split(':');
  const agent = new http.Agent({ keepAlive: true });
  /** token -> the scopes it was issued for */
  const tokens = new Map<string, Set<string>>();
  const events = new EventEmitter();
  let port = 0;

  const proxy: RegistryProxy = {
    host: '',
    port: 0,
    upstream: opts.upstream,
    requests: [],
    tokenRequests: 0,
    auth: undefined,
    blobs: undefined,
    events,
    count(method, urlContains) {
      return this.requests.filter((r) => r.method === method && r.url.includes(urlContains)).length;
    },
    reset() {
      this.requests.length = 0;
      this.tokenRequests = 0;
    },
    waitForRequest(method, urlContains, timeoutMs = 10_000) {
      if (this.count(method, urlContains) > 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('request', onRequest);
          reject(new Error(`registry proxy: no ${method} ${urlContains} within ${timeoutMs} ms`));
        }, timeoutMs);
        const onRequest = (r: ProxyRequest) => {
          if (r.method !== method || !r.url.includes(urlContains)) return;
          clearTimeout(timer);
          events.off('request', onRequest);
          resolve();
        };
        events.on('request', onRequest);
      });
    },
    stop: async () => undefined,
  };

  const handleToken = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    proxy.tokenRequests++;
    const scopes = new Set(url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean));
    const token = randomBytes(16).toString('hex');
    tokens.set(token, scopes);
    const body = JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    req.resume();
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (url.pathname === '/token') {
      handleToken(req, res, url);
      return;
    }
    const record: ProxyRequest = { method: req.method ?? 'GET', url: req.url ?? '/', status: 0, aborted: false };
    proxy.requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    res.on('close', () => (record.aborted = !res.writableFinished));
    events.emit('request', record);

    if (proxy.auth && url.pathname.startsWith('/v2/')) {
      const repo = REPO_PATH.exec(url.pathname)?.[1];
      const scope = repo ? `repository:${repo}:pull` : undefined;
      const challenge =
        `Bearer realm="http://127.0.0.1:${port}/token",service="${proxy.auth.service}"` + (scope ? `,scope="${scope}"` : '');
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const granted = m ? tokens.get(m[1]!) : undefined;
      if (!granted || (scope && !granted.has(scope))) {
        req.resume();
        deny(res, challenge);
        return;
      }
    }

    const blob = BLOB_PATH.exec(url.pathname);
    const behaviour = blob && req.method === 'GET' ? proxy.blobs?.(blob[2]!) : undefined;
    const headers = { ...req.headers };
    delete headers.authorization;
    headers.host = opts.upstream;
    const upstream = http.request(
      { host: upHost, port: Number(upPort), method: req.method, path: req.url, headers, agent },
      async (up) => {
        const status = up.statusCode ?? 502;
        if (!behaviour || status !== 200) {
          res.writeHead(status, up.headers);
          up.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        for await (const c of up as AsyncIterable<Buffer>) chunks.push(c);
        const body = Buffer.concat(chunks);
        if (behaviour.corrupt && body.length > 0) body[body.length >> 1] ^= 0xff;
        res.writeHead(status, up.headers);
        res.flushHeaders();
        if (behaviour.stall) return; // until the client gives up (or stop() closes the connection)
        if (behaviour.delayMs) await new Promise((r) => setTimeout(r, behaviour.delayMs));
        if (behaviour.gate) await behaviour.gate;
        if (behaviour.throttle) {
          const { chunkBytes, intervalMs } = behaviour.throttle;
          for (let at = 0; at < body.length && !res.destroyed; at += chunkBytes) {
            res.write(body.subarray(at, at + chunkBytes));
            await new Promise((r) => setTimeout(r, intervalMs));
          }
        }
        if (!res.destroyed) res.end(behaviour.throttle ? undefined : body);
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`proxy: upstream ${opts.upstream} failed: ${err.message}`);
      } else {
        res.destroy();
      }
    });
    req.pipe(upstream);
  });
  // A stalled response must not keep a keep-alive timer from closing things in stop().
  server.keepAliveTimeout = 1000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  proxy.port = port;
  proxy.host = `127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  proxy.stop = () => {
    stopped ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      agent.destroy();
    });
    return stopped;
  };
  return proxy;
}
