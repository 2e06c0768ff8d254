import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import type { Readable } from 'stream';
import {
  CancelledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
} from '../../../src/errors';
import { parseReference } from '../../../src/image/reference';
import { RegistryClient, RegistryClientOptions } from '../../../src/image/registry/client';
import { DigestMismatchError, RegistryAuthError } from '../../../src/image/registry/errors';
import { parseHostsToml } from '../../../src/image/registry/hosts';
import { MediaTypes, Platform } from '../../../src/image/registry/types';
import { closedPort, errorBody, FakeRegistry, FakeServer, Handler, sha256, startTokenServer } from './fake-registry';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function registry(): Promise<FakeRegistry> {
  const reg = await FakeRegistry.start();
  cleanups.push(() => reg.close());
  return reg;
}

async function server(handler: Handler): Promise<FakeServer> {
  const s = await FakeServer.start(handler);
  cleanups.push(() => s.close());
  return s;
}

function client(opts: RegistryClientOptions): RegistryClient {
  const c = new RegistryClient({ platform: AMD64, stallTimeoutMs: 3000, ...opts });
  cleanups.push(() => c.close());
  return c;
}

/** A client whose only endpoint is `reg` over plain http, configured the way hosts.toml would. */
function clientFor(reg: FakeRegistry, opts: RegistryClientOptions = {}, toml = ''): RegistryClient {
  return client({
    endpoints: async (r) => parseHostsToml(`server = "${reg.server.url}"\n${toml}`, { registry: r, baseDir: '/nonexistent' }).endpoints,
    ...opts,
  });
}

function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('anonymous pulls', () => {
  test('resolve by HEAD, fetch manifest and blobs, no credentials sent', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['layer-one', 'layer-two']);
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/library/app:v1`);

    const resolved = await c.resolve(ref);
    expect(resolved).toEqual({ descriptor: img.manifest, host: reg.host });

    const m = await c.fetchManifest(ref, resolved.descriptor);
    expect(m.kind).toBe('manifest');
    expect(m.digest).toBe(img.manifest.digest);
    expect(sha256(m.raw)).toBe(img.manifest.digest);
    expect((m.json as { layers: unknown[] }).layers).toEqual(img.layers);

    const blob = await c.fetchBlob(ref, img.layers[1]);
    expect(blob.size).toBe(9);
    expect(blob.offset).toBe(0);
    expect((await readAll(blob.stream)).toString()).toBe('layer-two');

    expect(reg.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'HEAD /v2/library/app/manifests/v1',
      `GET /v2/library/app/manifests/${img.manifest.digest}`,
      `GET /v2/library/app/blobs/${img.layers[1].digest}`,
    ]);
    expect(reg.requests.map((r) => r.headers.authorization)).toEqual([undefined, undefined, undefined]);
    expect(reg.requests[0].headers.accept).toContain(MediaTypes.ociIndex);
    expect(reg.requests[0].headers.accept).toContain(MediaTypes.dockerManifest);
  });

  test('falls back to GET when HEAD is not allowed, and reuses that body for fetchManifest', async () => {
    const reg = await registry();
    const img = reg.addImage('team/app', 'v2', ['x']);
    reg.manifests.get('team/app:v2')!.head = false;
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/team/app:v2`);
    const image = await c.resolveImage(ref);
    expect(image.target).toEqual(img.manifest);
    expect(image.config).toEqual(img.config);
    expect(image.layers).toEqual(img.layers);
    expect(image.indexes).toEqual([]);
    const gets = reg.requests.filter((r) => r.method === 'GET' && r.url.includes('/manifests/'));
    expect(gets).toHaveLength(1);
  });

  test('unknown tag is NotFound naming reference, host and registry error', async () => {
    const reg = await registry();
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/library/app:v9`);
    const err = await caught(c.resolve(ref));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(`pull of ${reg.host}/library/app:v9 from ${reg.host}: manifest v9 not found (HTTP 404)`);

    // With GET (HEAD refused), the registry's error document is quoted.
    reg.intercept = (req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(405).end();
        return true;
      }
      return false;
    };
    const err2 = await caught(c.resolve(ref));
    expect(err2.message).toBe(
      `pull of ${reg.host}/library/app:v9 from ${reg.host}: manifest v9 not found (HTTP 404: MANIFEST_UNKNOWN: manifest unknown)`,
    );
  });

  test('a Docker schema 2 manifest resolves with its media type', async () => {
    const reg = await registry();
    const img = reg.addImage('library/d', 'v1', ['l'], MediaTypes.dockerManifest);
    const c = clientFor(reg);
    const image = await c.resolveImage(parseReference(`${reg.host}/library/d:v1`));
    expect(image.manifest.mediaType).toBe(MediaTypes.dockerManifest);
    expect(image.target.mediaType).toBe(MediaTypes.dockerManifest);
    expect(image.layers).toEqual(img.layers);
  });

  test('429 is ResourceExhausted, 5xx is Unavailable', async () => {
    const reg = await registry();
    reg.addImage('library/app', 'v1', ['x']);
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/library/app:v1`);
    reg.intercept = (_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json' }).end(errorBody('TOOMANYREQUESTS', 'slow down'));
      return true;
    };
    const err = await caught(c.resolve(ref));
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect(err.message).toContain(`from ${reg.host}: rate limited (HTTP 429`);
    reg.intercept = (_req, res) => {
      res.writeHead(503).end('down for maintenance');
      return true;
    };
    const err2 = await caught(c.resolve(ref));
    expect(err2).toBeInstanceOf(UnavailableError);
    expect(err2.message).toContain('HTTP 503');
  });

  test('resuming a blob from an offset uses a range request', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['0123456789']);
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/library/app:v1`);
    const blob = await c.fetchBlob(ref, img.layers[0], undefined, { offset: 4 });
    expect(blob.offset).toBe(4);
    expect((await readAll(blob.stream)).toString()).toBe('456789');
    expect(reg.requests[0].headers.range).toBe('bytes=4-');
  });

  test('invalid descriptors are refused before any request', async () => {
    const reg = await registry();
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/library/app:v1`);
    await expect(c.fetchBlob(ref, { mediaType: 'x', digest: 'sha256:nothex', size: 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.fetchBlob(ref, { mediaType: 'x', digest: sha256('a'), size: -1 })).rejects.toThrow(/invalid size -1/);
    expect(reg.requests).toHaveLength(0);
  });
});

describe('basic auth', () => {
  test('answers a Basic challenge, then sends credentials up front', async () => {
    const reg = await registry();
    reg.auth = { kind: 'basic', username: 'bob', password: 'pw' };
    const img = reg.addImage('library/app', 'v1', ['a', 'b']);
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/library/app:v1`);
    const auth = { auth: Buffer.from('bob:pw').toString('base64') };
    await c.resolveImage(ref, undefined, { auth });
    for (const l of img.layers) await readAll((await c.fetchBlob(ref, l, undefined, { auth })).stream);
    const sent = reg.requests.map((r) => r.headers.authorization);
    // Only the first request goes out bare; everything after carries the credentials.
    expect(sent).toEqual([undefined, basic('bob', 'pw'), basic('bob', 'pw'), basic('bob', 'pw'), basic('bob', 'pw')]);
  });

  test('wrong password: the registry refused the credentials', async () => {
    const reg = await registry();
    reg.auth = { kind: 'basic', username: 'bob', password: 'pw' };
    reg.addImage('library/app', 'v1', ['a']);
    const c = clientFor(reg);
    const ref = parseReference(`${reg.host}/library/app:v1`);
    const err = await caught(c.resolve(ref, undefined, { auth: { username: 'bob', password: 'nope' } }));
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as RegistryAuthError).status).toBe(401);
    expect(err.message).toContain(`pull of ${reg.host}/library/app:v1 from ${reg.host}: the registry refused the credentials for user "bob"`);
  });

  test('no credentials for a Basic registry says so', async () => {
    const reg = await registry();
    reg.auth = { kind: 'basic', username: 'bob', password: 'pw' };
    reg.addImage('library/app', 'v1', ['a']);
    const err = await caught(clientFor(reg).resolve(parseReference(`${reg.host}/library/app:v1`)));
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err.message).toMatch(/requires a username and password .* none were supplied/);
  });

  test('malformed auth field is InvalidArgument before any request', async () => {
    const reg = await registry();
    const c = clientFor(reg);
    const err = await caught(c.resolve(parseReference(`${reg.host}/library/app:v1`), undefined, { auth: { auth: 'bm9jb2xvbg==' } }));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain(`pull of ${reg.host}/library/app:v1`);
    expect(err.message).toContain('"auth" field');
    expect(reg.requests).toHaveLength(0);
  });
});

describe('bearer tokens', () => {
  async function bearerSetup(tokenOpts: Parameters<typeof startTokenServer>[1]) {
    const reg = await registry();
    const tokens = await startTokenServer(reg, tokenOpts);
    cleanups.push(() => tokens.close());
    reg.auth = { kind: 'bearer', realm: `${tokens.url}/token`, service: 'fake-registry' };
    const img = reg.addImage('library/app', 'v1', ['layer-a', 'layer-b', 'layer-c']);
    return { reg, tokens, img, ref: parseReference(`${reg.host}/library/app:v1`) };
  }

  test('fetches one token with basic credentials and reuses it until expires_in passes', async () => {
    const { reg, tokens, img, ref } = await bearerSetup({ username: 'alice', password: 's3cret', expiresIn: 300 });
    let now = 1_000_000;
    const c = clientFor(reg, { now: () => now });
    const auth = { username: 'alice', password: 's3cret' };

    const image = await c.resolveImage(ref, undefined, { auth });
    await Promise.all(img.layers.map(async (l) => readAll((await c.fetchBlob(ref, l, undefined, { auth })).stream)));
    expect(image.layers).toHaveLength(3);
    expect(tokens.requests).toHaveLength(1);
    const tokenUrl = new URL(tokens.requests[0].url, 'http://x');
    expect(tokenUrl.pathname).toBe('/token');
    expect(tokenUrl.searchParams.get('service')).toBe('fake-registry');
    expect(tokenUrl.searchParams.getAll('scope')).toEqual(['repository:library/app:pull']);
    expect(tokens.requests[0].headers.authorization).toBe(basic('alice', 's3cret'));
    // One 401 in total; every later request carried the token.
    expect(reg.requests.filter((r) => !r.headers.authorization)).toHaveLength(1);
    expect(reg.requests.slice(1).every((r) => r.headers.authorization === 'Bearer tok-1')).toBe(true);

    now += 200_000;
    await c.resolve(ref, undefined, { auth });
    expect(tokens.requests).toHaveLength(1);

    now += 101_000;
    await c.resolve(ref, undefined, { auth });
    expect(tokens.requests).toHaveLength(2);
    expect(reg.requests[reg.requests.length - 1].headers.authorization).toBe('Bearer tok-2');
  });

  test('without expires_in a token lives 60 s', async () => {
    const { reg, tokens, ref } = await bearerSetup({});
    let now = 0;
    const c = clientFor(reg, { now: () => now });
    await c.resolve(ref);
    now += 50_000;
    await c.resolve(ref);
    expect(tokens.requests).toHaveLength(1);
    now += 11_000;
    await c.resolve(ref);
    expect(tokens.requests).toHaveLength(2);
  });

  test('anonymous token requests carry no Authorization', async () => {
    const { reg, tokens, ref } = await bearerSetup({ expiresIn: 300 });
    await clientFor(reg).resolveImage(ref);
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.requests[0].headers.authorization).toBeUndefined();
  });

  test('different credentials never share a token', async () => {
    const { reg, tokens, ref } = await bearerSetup({ expiresIn: 300 });
    const c = clientFor(reg);
    await c.resolve(ref);
    await c.resolve(ref, undefined, { auth: { username: 'x', password: 'y' } });
    expect(tokens.requests).toHaveLength(2);
  });

  test('identity_token is traded by POST grant_type=refresh_token', async () => {
    const { reg, tokens, ref } = await bearerSetup({ refreshToken: 'refresh-xyz', expiresIn: 300 });
    await clientFor(reg).resolveImage(ref, undefined, { auth: { identityToken: 'refresh-xyz' } });
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.requests[0].method).toBe('POST');
    expect(tokens.requests[0].headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = new URLSearchParams(tokens.requests[0].body);
    expect(form.get('grant_type')).toBe('refresh_token');
    expect(form.get('refresh_token')).toBe('refresh-xyz');
    expect(form.get('service')).toBe('fake-registry');
    expect(form.get('scope')).toBe('repository:library/app:pull');
  });

  test('registry_token is sent as the bearer token directly', async () => {
    const { reg, tokens, ref } = await bearerSetup({});
    reg.validTokens.add('static-token');
    await clientFor(reg).resolveImage(ref, undefined, { auth: { registryToken: 'static-token' } });
    expect(tokens.requests).toHaveLength(0);
    expect(reg.requests.map((r) => r.headers.authorization)).toEqual(['Bearer static-token', 'Bearer static-token']);
  });

  test('token service refusing the credentials is a RegistryAuthError naming it', async () => {
    const { reg, tokens, ref } = await bearerSetup({ username: 'alice', password: 's3cret' });
    const err = await caught(clientFor(reg).resolve(ref, undefined, { auth: { username: 'alice', password: 'wrong' } }));
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err.message).toContain(`pull of ${reg.host}/library/app:v1 from ${reg.host}: token service ${tokens.host} refused the credentials for user "alice"`);
    expect(err.message).toContain('incorrect username or password');
  });

  test('registry refusing a freshly issued token: credentials refused', async () => {
    const { reg, ref } = await bearerSetup({ username: 'alice', password: 's3cret' });
    // The token service issues a token, but the registry will not honour it.
    reg.intercept = (req, res) => {
      if (!req.headers.authorization) return false;
      res
        .writeHead(401, {
          'content-type': 'application/json',
          'www-authenticate': 'Bearer realm="x",service="fake-registry",error="insufficient_scope"',
        })
        .end(errorBody('DENIED', 'requested access to the resource is denied'));
      return true;
    };
    const err = await caught(clientFor(reg).resolve(ref, undefined, { auth: { username: 'alice', password: 's3cret' } }));
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err.message).toContain(
      `pull of ${reg.host}/library/app:v1 from ${reg.host}: the registry refused the credentials for user "alice" (HTTP 401: insufficient_scope)`,
    );
    // With GET the registry's error document is quoted as well.
    reg.intercept = ((prev) => (req, res, route) => {
      if (req.method === 'HEAD') {
        res.writeHead(405).end();
        return true;
      }
      return prev!(req, res, route);
    })(reg.intercept);
    const err2 = await caught(clientFor(reg).resolve(ref, undefined, { auth: { username: 'alice', password: 's3cret' } }));
    expect(err2.message).toContain('(HTTP 401: DENIED: requested access to the resource is denied; insufficient_scope)');
  });
});

describe('mirrors', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'mirror-test-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  });

  function hostsToml(registryHost: string, text: string): void {
    mkdirSync(path.join(root, registryHost), { recursive: true });
    writeFileSync(path.join(root, registryHost, 'hosts.toml'), text);
  }

  test('a mirror refusing connections falls back to the upstream', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['payload']);
    const dead = await closedPort();
    hostsToml(reg.host, `server = "${reg.server.url}"\n\n[host."http://127.0.0.1:${dead}"]\n  capabilities = ["pull", "resolve"]\n`);
    const c = client({ hostsDir: root });
    const ref = parseReference(`${reg.host}/library/app:v1`);
    const image = await c.resolveImage(ref);
    expect(image.target.digest).toBe(img.manifest.digest);
    const blob = await c.fetchBlob(ref, img.layers[0]);
    expect(blob.host).toBe(reg.host);
    expect((await readAll(blob.stream)).toString()).toBe('payload');
  });

  test('all endpoints failing: the last error, with the earlier ones summarised', async () => {
    const reg = await registry();
    const dead = await closedPort();
    hostsToml(reg.host, `server = "${reg.server.url}"\n[host."http://127.0.0.1:${dead}"]\n`);
    const c = client({ hostsDir: root });
    const err = await caught(c.resolve(parseReference(`${reg.host}/library/app:nope`)));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(
      `pull of ${reg.host}/library/app:nope from ${reg.host}: manifest nope not found (HTTP 404)` +
        ` (tried first: mirror 127.0.0.1:${dead}: connection to 127.0.0.1:${dead} refused)`,
    );
  });

  test('a mirror answering 404 or 500 falls back; the mirror gets ns= and no upstream credentials', async () => {
    const reg = await registry();
    reg.auth = { kind: 'basic', username: 'u', password: 'p' };
    const img = reg.addImage('library/app', 'v1', ['payload']);
    const empty = await registry();
    const broken = await registry();
    broken.intercept = (_req, res) => {
      res.writeHead(500).end('oops');
      return true;
    };
    hostsToml(
      reg.host,
      `server = "${reg.server.url}"\n[host."${empty.server.url}"]\n  capabilities = ["pull", "resolve"]\n[host."${broken.server.url}"]\n`,
    );
    const c = client({ hostsDir: root });
    const ref = parseReference(`${reg.host}/library/app:v1`);
    const auth = { username: 'u', password: 'p' };
    const image = await c.resolveImage(ref, undefined, { auth });
    expect(image.manifest.digest).toBe(img.manifest.digest);
    expect(empty.requests[0].url).toBe(`/v2/library/app/manifests/v1?ns=${encodeURIComponent(reg.host)}`);
    expect(broken.requests.length).toBeGreaterThan(0);
    expect([...empty.requests, ...broken.requests].every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(reg.requests.some((r) => r.headers.authorization === basic('u', 'p'))).toBe(true);
  });

  test('pull-only mirrors are skipped for tag resolution but used for digests', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['payload']);
    const mirror = await registry();
    mirror.addImage('library/app', undefined, ['payload']);
    hostsToml(reg.host, `server = "${reg.server.url}"\n[host."${mirror.server.url}"]\n  capabilities = ["pull"]\n`);
    const c = client({ hostsDir: root });
    const ref = parseReference(`${reg.host}/library/app:v1`);
    await c.resolve(ref);
    expect(mirror.requests).toHaveLength(0);
    const blob = await c.fetchBlob(ref, img.layers[0]);
    expect(blob.host).toBe(mirror.host);
    await readAll(blob.stream);
  });

  test('no endpoint able to resolve tags is a FailedPrecondition', async () => {
    const reg = await registry();
    hostsToml(reg.host, `server = "${reg.server.url}"\ncapabilities = ["pull"]\n`);
    const err = await caught(client({ hostsDir: root }).resolve(parseReference(`${reg.host}/library/app:v1`)));
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(err.message).toContain('has the "resolve" capability');
    expect(err.message).toContain(path.join(root, reg.host, 'hosts.toml'));
  });
});

describe('platform selection', () => {
  async function multiArch() {
    const reg = await registry();
    const amd = reg.addImage('library/multi', undefined, ['amd64']);
    const arm64bare = reg.addImage('library/multi', undefined, ['arm64-bare']);
    const arm64v8 = reg.addImage('library/multi', undefined, ['arm64-v8']);
    const armv7 = reg.addImage('library/multi', undefined, ['arm-v7']);
    const attestation = reg.addImage('library/multi', undefined, ['attestation']);
    const index = reg.addManifest(
      'library/multi',
      'latest',
      {
        schemaVersion: 2,
        mediaType: MediaTypes.ociIndex,
        manifests: [
          { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
          { ...arm64bare.manifest, platform: { os: 'linux', architecture: 'arm64' } },
          { ...arm64v8.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          { ...armv7.manifest, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
          {
            ...attestation.manifest,
            platform: { os: 'unknown', architecture: 'unknown' },
            annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
          },
        ],
      },
      MediaTypes.ociIndex,
    );
    return { reg, amd, arm64v8, armv7, index, ref: parseReference(`${reg.host}/library/multi`) };
  }

  test('picks the exact variant from an index', async () => {
    const { reg, arm64v8, index, ref } = await multiArch();
    const image = await clientFor(reg, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }).resolveImage(ref);
    expect(image.target).toEqual(index);
    expect(image.indexes.map((i) => i.digest)).toEqual([index.digest]);
    expect(image.manifest.digest).toBe(arm64v8.manifest.digest);
    expect(image.layers).toEqual(arm64v8.layers);
    expect(image.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  test('amd64 and arm/v7 nodes get theirs', async () => {
    const { reg, amd, armv7, ref } = await multiArch();
    expect((await clientFor(reg).resolveImage(ref)).manifest.digest).toBe(amd.manifest.digest);
    const arm = clientFor(reg, { platform: { os: 'linux', architecture: 'arm', variant: 'v7' } });
    expect((await arm.resolveImage(ref)).manifest.digest).toBe(armv7.manifest.digest);
  });

  test('no match lists what the index offers, without attestations', async () => {
    const { reg, ref } = await multiArch();
    const err = await caught(clientFor(reg, { platform: { os: 'linux', architecture: 's390x' } }).resolveImage(ref));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(
      `pull of ${reg.host}/library/multi:latest from ${reg.host}: the image has no manifest for this node's platform linux/s390x; ` +
        'it offers linux/amd64, linux/arm64, linux/arm64/v8, linux/arm/v7',
    );
  });

  test('Docker manifest lists work the same way', async () => {
    const reg = await registry();
    const amd = reg.addImage('library/dl', undefined, ['a'], MediaTypes.dockerManifest);
    reg.addManifest(
      'library/dl',
      'v1',
      {
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifestList,
        manifests: [{ ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } }],
      },
      MediaTypes.dockerManifestList,
    );
    const image = await clientFor(reg).resolveImage(parseReference(`${reg.host}/library/dl:v1`));
    expect(image.indexes[0].kind).toBe('index');
    expect(image.manifest.digest).toBe(amd.manifest.digest);
  });
});

describe('content integrity', () => {
  test('Docker schema 1 is refused (by Content-Type on HEAD)', async () => {
    const reg = await registry();
    reg.addManifest('library/old', 'v1', { schemaVersion: 1, name: 'library/old', fsLayers: [] }, MediaTypes.dockerSchema1Signed);
    const err = await caught(clientFor(reg).resolve(parseReference(`${reg.host}/library/old:v1`)));
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(err.message).toContain(`pull of ${reg.host}/library/old:v1 from ${reg.host}: the image uses the Docker image manifest v2 schema 1 format`);
  });

  test('Docker schema 1 is refused (by body, generic Content-Type)', async () => {
    const reg = await registry();
    reg.addManifest('library/old', 'v1', { schemaVersion: 1, name: 'library/old', fsLayers: [] }, 'application/json', { head: false });
    const err = await caught(clientFor(reg).resolve(parseReference(`${reg.host}/library/old:v1`)));
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(err.message).toMatch(/schema 1/);
  });

  test('a manifest whose Docker-Content-Digest disagrees with its bytes', async () => {
    const reg = await registry();
    reg.addImage('library/app', 'v1', ['x']);
    const stored = reg.manifests.get('library/app:v1')!;
    stored.head = false;
    stored.digestHeader = `sha256:${'0'.repeat(64)}`;
    const err = await caught(clientFor(reg).resolve(parseReference(`${reg.host}/library/app:v1`)));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(`Docker-Content-Digest says sha256:${'0'.repeat(64)}`);
    expect(err.message).toContain(`pull of ${reg.host}/library/app:v1 from ${reg.host}`);
  });

  test('a manifest fetched by digest whose bytes hash differently', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['x']);
    const claimed = `sha256:${'ab'.repeat(32)}`;
    reg.manifests.set(`library/app@${claimed}`, { ...reg.manifests.get('library/app:v1')!, digestHeader: null });
    const ref = parseReference(`${reg.host}/library/app@${claimed}`);
    const err = await caught(clientFor(reg).resolveImage(ref));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).expected).toBe(claimed);
    expect((err as DigestMismatchError).actual).toBe(img.manifest.digest);
  });

  test('a tampered blob fails at the end of the stream', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['original']);
    reg.blobs.set(img.layers[0].digest, Buffer.from('tampered'));
    const c = clientFor(reg);
    const blob = await c.fetchBlob(parseReference(`${reg.host}/library/app:v1`), img.layers[0]);
    const err = await caught(readAll(blob.stream));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(`expected ${img.layers[0].digest}`);
  });

  test('a blob cut short is Unavailable, not a short success', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['0123456789']);
    reg.intercept = (_req, res, route) => {
      if (route.kind !== 'blobs') return false;
      res.writeHead(200, { 'content-length': '10' });
      res.write('01234');
      setTimeout(() => res.destroy(), 20);
      return true;
    };
    const blob = await clientFor(reg).fetchBlob(parseReference(`${reg.host}/library/app:v1`), img.layers[0]);
    const err = await caught(readAll(blob.stream));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toMatch(/after 5 of 10 bytes|was reset|closed before/);
  });
});

describe('timeouts, cancellation and redirects', () => {
  test('a blob that sends headers and then nothing fails with DeadlineExceeded in time', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['never arrives']);
    reg.intercept = (_req, res, route) => {
      if (route.kind !== 'blobs') return false;
      res.writeHead(200, { 'content-length': String(img.layers[0].size) });
      res.flushHeaders();
      return true;
    };
    const c = clientFor(reg, { stallTimeoutMs: 300 });
    const ref = parseReference(`${reg.host}/library/app:v1`);
    const blob = await c.fetchBlob(ref, img.layers[0]);
    const start = Date.now();
    const err = await caught(readAll(blob.stream));
    const elapsed = Date.now() - start;
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err.message).toBe(`pull of ${ref.string()} from ${reg.host} received no data for 0.3 s (blob ${img.layers[0].digest})`);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
  });

  test('a registry that never answers times out too', async () => {
    const reg = await registry();
    reg.intercept = () => true; // accept the request, never respond
    const c = clientFor(reg, { stallTimeoutMs: 200 });
    const err = await caught(c.resolve(parseReference(`${reg.host}/library/app:v1`)));
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err.message).toBe(`pull of ${reg.host}/library/app:v1 from ${reg.host} received no data for 0.2 s`);
  });

  test('a slow consumer is not a stalled registry', async () => {
    const reg = await registry();
    const big = Buffer.alloc(8 << 20, 7);
    const desc = reg.addBlob(big);
    const c = clientFor(reg, { stallTimeoutMs: 200 });
    const blob = await c.fetchBlob(parseReference(`${reg.host}/library/app:v1`), desc);
    const chunks: Buffer[] = [];
    let paused = false;
    for await (const chunk of blob.stream) {
      chunks.push(chunk as Buffer);
      if (!paused) {
        paused = true;
        await sleep(700);
      }
    }
    expect(sha256(Buffer.concat(chunks))).toBe(desc.digest);
  });

  test('an aborted signal cancels before and during a transfer', async () => {
    const reg = await registry();
    const img = reg.addImage('library/app', 'v1', ['x']);
    const c = clientFor(reg, { stallTimeoutMs: 10_000 });
    const ref = parseReference(`${reg.host}/library/app:v1`);

    const pre = new AbortController();
    pre.abort();
    const err = await caught(c.resolve(ref, pre.signal));
    expect(err).toBeInstanceOf(CancelledError);
    expect(err.message).toContain(`pull of ${ref.string()} from ${reg.host}`);
    expect(reg.requests).toHaveLength(0);

    reg.intercept = (_req, res, route) => {
      if (route.kind !== 'blobs') return false;
      res.writeHead(200, { 'content-length': '1' });
      res.flushHeaders();
      return true;
    };
    const mid = new AbortController();
    const blob = await c.fetchBlob(ref, img.layers[0], mid.signal);
    setTimeout(() => mid.abort(), 50);
    const err2 = await caught(readAll(blob.stream));
    expect(err2).toBeInstanceOf(CancelledError);
  });

  test('AbortSignal.timeout is reported as DeadlineExceeded', async () => {
    const reg = await registry();
    reg.intercept = () => true;
    const c = clientFor(reg, { stallTimeoutMs: 10_000 });
    const start = Date.now();
    const err = await caught(c.resolve(parseReference(`${reg.host}/library/app:v1`), AbortSignal.timeout(150)));
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err.message).toMatch(/deadline/);
    expect(Date.now() - start).toBeLessThan(2000);
  });

  test('a redirect to another host drops Authorization and hosts.toml headers', async () => {
    const reg = await registry();
    reg.auth = { kind: 'basic', username: 'u', password: 'p' };
    const img = reg.addImage('library/app', 'v1', ['stored elsewhere']);
    const storage = await server((req, res) => {
      const digest = new URL(req.url ?? '', 'http://x').pathname.split('/').pop()!;
      const data = reg.blobs.get(digest);
      if (!data) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': String(data.length) }).end(data);
    });
    reg.intercept = (req, res, route) => {
      if (route.kind !== 'blobs' || req.headers.authorization !== basic('u', 'p')) return false;
      res.writeHead(307, { location: `http://localhost:${storage.port}/store/${route.ref}?sig=abc` }).end();
      return true;
    };
    const c = clientFor(reg, {}, '[header]\n  x-registry-key = "k1"\n');
    const ref = parseReference(`${reg.host}/library/app:v1`);
    const auth = { username: 'u', password: 'p' };
    const blob = await c.fetchBlob(ref, img.layers[0], undefined, { auth });
    expect((await readAll(blob.stream)).toString()).toBe('stored elsewhere');

    const toRegistry = reg.requests[reg.requests.length - 1];
    expect(toRegistry.headers.authorization).toBe(basic('u', 'p'));
    expect(toRegistry.headers['x-registry-key']).toBe('k1');
    expect(storage.requests).toHaveLength(1);
    expect(storage.requests[0].url).toBe(`/store/${img.layers[0].digest}?sig=abc`);
    expect(storage.requests[0].headers.authorization).toBeUndefined();
    expect(storage.requests[0].headers['x-registry-key']).toBeUndefined();
  });
});
