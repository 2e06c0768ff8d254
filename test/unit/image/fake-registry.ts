import { createHash } from 'crypto';
import * as http from 'http';
import type { AddressInfo } from 'net';
import type { Descriptor } from '../../../src/image/registry/types';

/**
 * An in-process stand-in for a registry and its token service, small
 * enough to read in one go, with hooks for the misbehaviour the client must
 * survive. Everything listens on 127.0.0.1:0.
 */

export interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

export class FakeServer {
  readonly requests: Recorded[] = [];
  private readonly sockets = new Set<import('net').Socket>();

  private constructor(
    readonly server: http.Server,
    public handler: Handler,
  ) {}

  static async start(handler: Handler): Promise<FakeServer> {
    let self: FakeServer | undefined;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        self!.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        self!.handler(req, res, body);
      });
    });
    self = new FakeServer(server, handler);
    server.on('connection', (s) => {
      self!.sockets.add(s);
      s.on('close', () => self!.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** host:port as it appears in references. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A port nothing listens on: bind, note the port, close. */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

type Auth =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; realm: string; service: string };

interface StoredManifest {
  contentType: string;
  body: Buffer;
  /** Overrides the Docker-Content-Digest header (null: omit it). */
  digestHeader?: string | null;
  /** Whether HEAD is answered (false: 405, to force GET). */
  head?: boolean;
}

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ errors: [{ code, message }] });
}

export class FakeRegistry {
  auth: Auth = { kind: 'none' };
  /** Tokens the token service has issued and the registry accepts. */
  readonly validTokens = new Set<string>();
  readonly manifests = new Map<string, StoredManifest>();
  readonly blobs = new Map<string, Buffer>();
  /** Return true to take over a request before the normal handling. */
  intercept?: (req: http.IncomingMessage, res: http.ServerResponse, route: { repo: string; kind: string; ref: string }) => boolean;

  private constructor(readonly server: FakeServer) {}

  static async start(): Promise<FakeRegistry> {
    let reg: FakeRegistry | undefined;
    const server = await FakeServer.start((req, res) => reg!.handle(req, res));
    reg = new FakeRegistry(server);
    return reg;
  }

  get host(): string {
    return this.server.host;
  }

  get requests(): Recorded[] {
    return this.server.requests;
  }

  close(): Promise<void> {
    return this.server.close();
  }

  addBlob(data: Buffer | string, mediaType = 'application/octet-stream'): Descriptor {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    const digest = sha256(buf);
    this.blobs.set(digest, buf);
    return { mediaType, digest, size: buf.length };
  }

  /** Stores a manifest under its digest and, if given, a tag. */
  addManifest(repo: string, tag: string | undefined, doc: unknown, mediaType: string, extra: Partial<StoredManifest> = {}): Descriptor {
    const body = Buffer.from(JSON.stringify(doc, null, 2));
    const digest = sha256(body);
    const stored: StoredManifest = { contentType: mediaType, body, ...extra };
    this.manifests.set(`${repo}@${digest}`, stored);
    if (tag) this.manifests.set(`${repo}:${tag}`, stored);
    return { mediaType, digest, size: body.length };
  }

  /** A complete single-platform image: config, layers, manifest. */
  addImage(repo: string, tag: string | undefined, layers: string[], mediaType = 'application/vnd.oci.image.manifest.v1+json') {
    const config = this.addBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }), 'application/vnd.oci.image.config.v1+json');
    const layerDescs = layers.map((l) => this.addBlob(l, 'application/vnd.oci.image.layer.v1.tar'));
    const manifest = this.addManifest(repo, tag, { schemaVersion: 2, mediaType, config, layers: layerDescs }, mediaType);
    return { config, layers: layerDescs, manifest };
  }

  private authorized(req: http.IncomingMessage): boolean {
    const a = this.auth;
    const got = req.headers.authorization;
    if (a.kind === 'none') return true;
    if (a.kind === 'basic') return got === `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
    return !!got && got.startsWith('Bearer ') && this.validTokens.has(got.slice('Bearer '.length));
  }

  private challenge(repo: string): string {
    const a = this.auth;
    if (a.kind === 'basic') return 'Basic realm="fake-registry"';
    if (a.kind === 'bearer') return `Bearer realm="${a.realm}",service="${a.service}",scope="repository:${repo}:pull"`;
    return '';
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(errorBody('NOT_FOUND', 'no route'));
      return;
    }
    const [, repo, kind, ref] = m;
    if (this.intercept?.(req, res, { repo, kind, ref })) return;
    if (!this.authorized(req)) {
      res
        .writeHead(401, { 'www-authenticate': this.challenge(repo), 'content-type': 'application/json' })
        .end(errorBody('UNAUTHORIZED', 'authentication required'));
      return;
    }
    if (kind === 'manifests') {
      const key = ref.includes(':') ? `${repo}@${ref}` : `${repo}:${ref}`;
      const stored = this.manifests.get(key);
      if (!stored) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(errorBody('MANIFEST_UNKNOWN', 'manifest unknown'));
        return;
      }
      if (req.method === 'HEAD' && stored.head === false) {
        res.writeHead(405).end();
        return;
      }
      const headers: Record<string, string> = {
        'content-type': stored.contentType,
        'content-length': String(stored.body.length),
      };
      const dh = stored.digestHeader === undefined ? sha256(stored.body) : stored.digestHeader;
      if (dh) headers['docker-content-digest'] = dh;
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : stored.body);
      return;
    }
    const blob = this.blobs.get(ref);
    if (!blob) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(errorBody('BLOB_UNKNOWN', 'blob unknown to registry'));
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      res.writeHead(206, {
        'content-length': String(blob.length - start),
        'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`,
      });
      res.end(blob.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': String(blob.length), 'docker-content-digest': ref });
    res.end(blob);
  }
}

/** A token service: checks credentials, issues numbered tokens into the registry's accepted set. */
export async function startTokenServer(
  registry: FakeRegistry,
  opts: { username?: string; password?: string; refreshToken?: string; expiresIn?: number } = {},
): Promise<FakeServer> {
  let n = 0;
  return FakeServer.start((req, res, body) => {
    let ok = true;
    if (req.method === 'POST') {
      const form = new URLSearchParams(body);
      ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === opts.refreshToken;
    } else if (opts.username !== undefined) {
      ok = req.headers.authorization === `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`;
    }
    if (!ok) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    const token = `tok-${++n}`;
    registry.validTokens.add(token);
    const doc: Record<string, unknown> = { token };
    if (opts.expiresIn !== undefined) doc.expires_in = opts.expiresIn;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
  });
}
