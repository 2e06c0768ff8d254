/**
 * The CRI ImageService through the built daemon, against the harness's real
 * containerd and real registries (the harness's docker-registry, a second
 * one with basic auth, and test/support/registry-proxy.ts in front of them
 * for bearer tokens, mirrors and misbehaviour).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ContainerdConnection } from '../../src/containerd/connection';
import {
  AuthConfig as CriAuthConfig,
  Image,
  ImageFsInfoRequest,
  ImageStatusRequest,
  ListImagesRequest,
  PullImageRequest,
  RemoveImageRequest,
  StreamImagesRequest,
  StreamImagesResponse,
} from '../../src/gen/runtime/v1/api';
import { silentLogger } from '../../src/log/logger';
import { loadHarnessEnv } from '../harness/env';
import { mountPoints, waitFor } from '../harness/util';
import { BuiltImage, buildImage, goPlatform, ImageConfigSpec, LayerSpec, pushImage, pushIndex } from '../harness/images';
import { Registry, startRegistry } from '../harness/registry';
import { AdapterProcess, startAdapter } from '../support/adapter-process';
import { CriCallError, criError, CriClient } from '../support/cri-client';
import { RegistryProxy, startRegistryProxy } from '../support/registry-proxy';

const execFileP = promisify(execFile);
const h = loadHarnessEnv();
const NS = 'cri-adapter-it-images';
const REG = h.registry.host;

// ---------------------------------------------------------------------------
// helpers

async function ctr(ns: string, ...args: string[]): Promise<string[]> {
  const { stdout } = await execFileP('ctr', ['--address', h.containerd.address, '-n', ns, ...args], { timeout: 20_000 });
  return stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

const imageRecords = (ns: string) => ctr(ns, 'images', 'ls', '-q');
const leases = (ns: string) => ctr(ns, 'leases', 'ls', '-q');
/** Ingests in progress, without the header line. */
const activeIngests = async (ns: string) => (await ctr(ns, 'content', 'active')).filter((l) => !/^REF\s/.test(l));
/** Committed content digests with their labels column. */
async function contentList(ns: string): Promise<{ digest: string; labels: string }[]> {
  return (await ctr(ns, 'content', 'ls'))
    .filter((l) => !/^DIGEST\s/.test(l))
    .map((l) => {
      const cols = l.split(/\s+/);
      return { digest: cols[0]!, labels: cols.slice(3).join(' ') };
    });
}
async function snapshots(ns: string): Promise<{ key: string; parent: string; kind: string }[]> {
  return (await ctr(ns, 'snapshots', 'ls'))
    .filter((l) => !/^KEY\s/.test(l))
    .map((l) => {
      const cols = l.split(/\s+/);
      return cols.length >= 3 ? { key: cols[0]!, parent: cols[1]!, kind: cols[2]! } : { key: cols[0]!, parent: '', kind: cols[1]! };
    });
}

type Auth = Partial<CriAuthConfig>;
const authConfig = (auth?: Auth) => (auth ? CriAuthConfig.fromPartial(auth) : undefined);

async function pull(client: CriClient, image: string, auth?: Auth): Promise<string> {
  const res = await client.image.pullImage(PullImageRequest.fromPartial({ image: { image }, auth: authConfig(auth) }));
  return res.imageRef;
}

async function pullError(client: CriClient, image: string, auth?: Auth): Promise<CriCallError> {
  return criError(client.image.pullImage(PullImageRequest.fromPartial({ image: { image }, auth: authConfig(auth) })));
}

async function status(client: CriClient, image: string, verbose = false) {
  return client.image.imageStatus(ImageStatusRequest.fromPartial({ image: { image }, verbose }));
}

async function list(client: CriClient, filter?: string): Promise<Image[]> {
  const res = await client.image.listImages(ListImagesRequest.fromPartial(filter ? { filter: { image: { image: filter } } } : {}));
  return res.images;
}

async function remove(client: CriClient, image: string): Promise<void> {
  await client.image.removeImage(RemoveImageRequest.fromPartial({ image: { image } }));
}

function streamImages(client: CriClient): Promise<StreamImagesResponse[]> {
  return client.stream((md, o) => client.raw.image.streamImages(StreamImagesRequest.fromPartial({}), md, o), { deadline: Date.now() + 20_000 });
}

/** A GET against a plain-http registry, JSON body. */
function registryJson<T>(host: string, p: string): Promise<T> {
  const [hostname, port] = host.split(':');
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        hostname,
        port: Number(port),
        path: p,
        agent: false,
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`GET ${host}${p}: HTTP ${res.statusCode}`));
          else resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
        });
      },
    );
    req.on('error', reject);
  });
}

/** A small image with content of its own (a label and a nonce), so no two share a digest. */
function tinyImage(label: string, config: ImageConfigSpec = {}): BuiltImage {
  return buildImage({
    layers: [{ entries: [{ type: 'file', path: 'id', content: `${label} ${randomBytes(8).toString('hex')}\n` }] }],
    config: { cmd: ['/id'], ...config },
  });
}

/** Layers of random (incompressible) bytes. */
function randomLayers(n: number, bytes: number): LayerSpec[] {
  return Array.from({ length: n }, (_, i) => ({ entries: [{ type: 'file' as const, path: `data/${i}`, content: randomBytes(bytes) }] }));
}

function bigImage(layers: LayerSpec[]): BuiltImage {
  return buildImage({ layers, config: { cmd: ['/bin/true'] } });
}

/** containerd's hosts.toml: `server`, then mirrors in order. */
function writeHosts(dir: string, registry: string, server: string, mirrors: string[] = []): void {
  const lines = [`server = ${JSON.stringify(server)}`, ''];
  for (const m of mirrors) lines.push(`[host.${JSON.stringify(m)}]`, '  capabilities = ["pull", "resolve"]', '');
  mkdirSync(path.join(dir, registry), { recursive: true });
  writeFileSync(path.join(dir, registry, 'hosts.toml'), lines.join('\n'));
}

const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const t0 = Date.now();
  const v = await fn();
  return [v, Date.now() - t0];
};

// ---------------------------------------------------------------------------

describe('ImageService against containerd and real registries', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'cri-adapter-images-it-'));
  const hostsDir = path.join(tmp, 'certs.d');
  const adapterDir = path.join(tmp, 'adapter');
  const adapterArgs = ['--registry-config-path', hostsDir];
  let adapter: AdapterProcess;
  let proxy: RegistryProxy; // pass-through / misbehaving proxy in front of the harness registry
  let bearer: RegistryProxy; // token-protected proxy in front of the harness registry
  let mirror: RegistryProxy; // mirror for the made-up registry below
  let authRegistry: Registry;
  const MIRRORED = 'mirrored.registry.test';
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    mkdirSync(adapterDir, { recursive: true });
    [proxy, bearer, mirror, authRegistry] = await Promise.all([
      startRegistryProxy({ upstream: REG }),
      startRegistryProxy({ upstream: REG }),
      startRegistryProxy({ upstream: REG }),
      startRegistry({ dir: path.join(tmp, 'auth-registry'), auth: { username: 'tester', password: 's3cret' } }),
    ]);
    bearer.auth = { service: 'cri-adapter-test-proxy' };
    writeHosts(hostsDir, REG, `http://${REG}`);
    writeHosts(hostsDir, proxy.host, `http://${proxy.host}`);
    writeHosts(hostsDir, bearer.host, `http://${bearer.host}`);
    writeHosts(hostsDir, authRegistry.host, `http://${authRegistry.host}`);
    writeHosts(hostsDir, MIRRORED, `http://${REG}`, [`http://${mirror.host}`]);
    adapter = await startAdapter({ containerdAddress: h.containerd.address, cniConfDir: h.cni.confDir, namespace: NS, dir: adapterDir, extraArgs: adapterArgs });
  });

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await adapter?.stop();
    await Promise.all([proxy?.stop(), bearer?.stop(), mirror?.stop(), authRegistry?.stop()]);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('pulls busybox anonymously: image_ref is the config digest, with tag, digest and ID records, a committed snapshot and no lease', async () => {
    const manifest = await registryJson<{ config: { digest: string } }>(REG, `/v2/cri-adapter-test/busybox/manifests/${h.imageDigests.busybox}`);
    const config = await registryJson<{ rootfs: { diff_ids: string[] } }>(REG, `/v2/cri-adapter-test/busybox/blobs/${manifest.config.digest}`);

    const ref = await pull(adapter.client, h.images.busybox);
    expect(ref).toBe(manifest.config.digest);
    const st = await status(adapter.client, h.images.busybox);
    expect(st.image?.id).toBe(ref);
    expect(st.image?.repoTags).toEqual([h.images.busybox]);
    expect(st.image?.repoDigests).toEqual([`${REG}/cri-adapter-test/busybox@${h.imageDigests.busybox}`]);
    expect(st.image?.size).toBeGreaterThan(0n);

    const records = await imageRecords(NS);
    expect(records).toEqual(
      expect.arrayContaining([h.images.busybox, `${REG}/cri-adapter-test/busybox@${h.imageDigests.busybox}`, ref]),
    );
    // single layer: the chain ID is the diff ID
    const chainId = config.rootfs.diff_ids[0]!;
    expect(await snapshots(NS)).toEqual(expect.arrayContaining([{ key: chainId, parent: '', kind: 'Committed' }]));
    // GC labels tie manifest -> config -> snapshot
    const content = await contentList(NS);
    expect(content.find((c) => c.digest === ref)?.labels).toContain(`containerd.io/gc.ref.snapshot.overlayfs=${chainId}`);
    expect(content.find((c) => c.digest === h.imageDigests.busybox)?.labels).toContain(`containerd.io/gc.ref.content.config=${ref}`);
    expect(await leases(NS)).toEqual([]);
    expect(await activeIngests(NS)).toEqual([]);
  });

  it('rejects a malformed reference with INVALID_ARGUMENT', async () => {
    const err = await pullError(adapter.client, 'UPPER/Case::bad');
    expect(err.code).toBe(3);
    expect(err.details).toContain('UPPER/Case::bad');
  });

  describe('registry with basic auth', () => {
    const repo = 'cri-adapter-test/private';
    let v1: BuiltImage;
    let v2: BuiltImage;
    beforeAll(async () => {
      v1 = tinyImage('private v1');
      v2 = tinyImage('private v2');
      await pushImage(authRegistry.host, repo, 'v1', v1, authRegistry.auth);
      await pushImage(authRegistry.host, repo, 'v2', v2, authRegistry.auth);
    });

    it('fails with a wrong password, naming the registry host and the reference', async () => {
      const image = `${authRegistry.host}/${repo}:v1`;
      const err = await pullError(adapter.client, image, { username: 'tester', password: 'wrong' });
      expect(err.details).toContain(authRegistry.host);
      expect(err.details).toContain(image);
      expect(err.details).toContain('tester');
      const anonymous = await pullError(adapter.client, image);
      expect(anonymous.details).toContain(image);
      expect(await list(adapter.client, image)).toEqual([]);
    });

    it('pulls with username/password and with the base64 `auth` form', async () => {
      const ref1 = await pull(adapter.client, `${authRegistry.host}/${repo}:v1`, { username: 'tester', password: 's3cret' });
      expect(ref1).toBe(v1.config.digest);
      const ref2 = await pull(adapter.client, `${authRegistry.host}/${repo}:v2`, {
        auth: Buffer.from('tester:s3cret').toString('base64'),
      });
      expect(ref2).toBe(v2.config.digest);
    });
  });

  it('pulls through a Bearer-token registry and reuses the token for another tag', async () => {
    const repo = 'cri-adapter-test/bearer';
    const a = tinyImage('bearer a');
    const b = tinyImage('bearer b');
    await pushImage(REG, repo, 'a', a);
    await pushImage(REG, repo, 'b', b);
    bearer.reset();
    expect(await pull(adapter.client, `${bearer.host}/${repo}:a`)).toBe(a.config.digest);
    expect(bearer.tokenRequests).toBe(1);
    // the first request was challenged; the rest carried the token
    expect(bearer.requests[0]!.status).toBe(401);
    expect(bearer.requests.filter((r) => r.status === 401)).toHaveLength(1);
    expect(await pull(adapter.client, `${bearer.host}/${repo}:b`)).toBe(b.config.digest);
    expect(bearer.tokenRequests).toBe(1);
    expect(bearer.requests.filter((r) => r.status === 401)).toHaveLength(1);
  });

  it('pulls through a hosts.toml mirror, and falls back to the server when the mirror is down', async () => {
    const repo = 'cri-adapter-test/mirrored';
    const one = tinyImage('mirrored one');
    const two = tinyImage('mirrored two');
    await pushImage(REG, repo, 'one', one);
    await pushImage(REG, repo, 'two', two);
    mirror.reset();
    expect(await pull(adapter.client, `${MIRRORED}/${repo}:one`)).toBe(one.config.digest);
    // resolved and fetched through the mirror, telling it which registry is meant
    expect(mirror.count('HEAD', `/v2/${repo}/manifests/one?ns=${MIRRORED}`)).toBe(1);
    expect(mirror.count('GET', `/v2/${repo}/blobs/${one.config.digest}`)).toBe(1);
    expect(mirror.count('GET', `/v2/${repo}/blobs/${one.layers[0]!.digest}`)).toBe(1);
    const st = await status(adapter.client, `${MIRRORED}/${repo}:one`);
    expect(st.image?.repoTags).toEqual([`${MIRRORED}/${repo}:one`]);

    await mirror.stop();
    expect(await pull(adapter.client, `${MIRRORED}/${repo}:two`)).toBe(two.config.digest);
  });

  it("picks this node's platform from a multi-platform index and records the index digest", async () => {
    const repo = 'cri-adapter-test/multi';
    const native = goPlatform();
    const otherArch = native.architecture === 'arm64' ? 'amd64' : 'arm64';
    const mine = tinyImage(`multi ${native.architecture}`);
    const other = tinyImage(`multi ${otherArch}`, { architecture: otherArch, os: 'linux' });
    expect(other.platform.architecture).toBe(otherArch);
    // the other platform first: taking the first entry would be wrong
    const pushed = await pushIndex(REG, repo, 'latest', [{ image: other }, { image: mine }]);
    const ref = await pull(adapter.client, `${REG}/${repo}:latest`);
    expect(ref).toBe(mine.config.digest);
    const st = await status(adapter.client, `${REG}/${repo}:latest`);
    expect(st.image?.id).toBe(mine.config.digest);
    expect(st.image?.repoDigests).toEqual([`${REG}/${repo}@${pushed.digest}`]);
    expect(st.image?.repoTags).toEqual([`${REG}/${repo}:latest`]);
    // the record's target is the index; the other platform's blobs were never fetched
    const content = (await contentList(NS)).map((c) => c.digest);
    expect(content).toEqual(expect.arrayContaining([pushed.digest, mine.manifest.digest, mine.config.digest]));
    expect(content).not.toContain(other.config.digest);
    expect(content).not.toContain(other.manifest.digest);
  });

  it('pulls by digest and by tag+digest', async () => {
    const repo = 'cri-adapter-test/bydigest';
    const img = tinyImage('by digest');
    const pushed = await pushImage(REG, repo, 't1', img);
    const byDigest = `${REG}/${repo}@${pushed.digest}`;
    expect(await pull(adapter.client, byDigest)).toBe(img.config.digest);
    let st = await status(adapter.client, byDigest);
    expect(st.image?.repoDigests).toEqual([byDigest]);
    expect(st.image?.repoTags).toEqual([]);
    expect((await status(adapter.client, `${REG}/${repo}:t1`)).image).toBeUndefined();

    expect(await pull(adapter.client, `${REG}/${repo}:t1@${pushed.digest}`)).toBe(img.config.digest);
    st = await status(adapter.client, `${REG}/${repo}:t1@${pushed.digest}`);
    expect(st.image?.id).toBe(img.config.digest);
    expect(st.image?.repoDigests).toEqual([byDigest]);

    // a digest the registry does not have
    const missing = `${REG}/${repo}@sha256:${'0'.repeat(64)}`;
    const err = await pullError(adapter.client, missing);
    expect(err.details).toContain(missing);
    expect(err.details).toMatch(/not found/);
  });

  it('fails on a corrupt blob naming the cause, leaves no record, lease or ingest, and a clean pull then works', async () => {
    const repo = 'cri-adapter-test/corrupt';
    const img = bigImage(randomLayers(5, 512 * 1024));
    await pushImage(REG, repo, 'latest', img);
    const image = `${proxy.host}/${repo}:latest`;
    const bad = img.layers[0]!.digest;
    const slow = img.layers.slice(1).map((l) => l.digest);
    // the first layer is corrupt; the others hang until released, so they are in flight when it fails
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    proxy.reset();
    proxy.blobs = (d) => (d === bad ? { corrupt: true } : slow.includes(d) ? { gate } : undefined);
    try {
      const err = await pullError(adapter.client, image);
      expect(err.details).toContain(image);
      expect(err.details).toContain(bad);
      expect(err.details).toMatch(/the \d+ bytes received do not hash to that digest/);
      // The downloads the failure cancelled have aborted their ingests before the answer.
      expect(await activeIngests(NS)).toEqual([]);
      expect(await leases(NS)).toEqual([]);
      expect((await imageRecords(NS)).filter((r) => r.includes(repo))).toEqual([]);
      expect(await list(adapter.client, image)).toEqual([]);
      // the failed pull cancelled the downloads it had running and started no more
      const inFlight = () => proxy.requests.filter((r) => slow.some((d) => r.url.endsWith(d)));
      expect(inFlight().length).toBeLessThanOrEqual(2);
      await waitFor('the slow downloads to be cancelled', () => inFlight().every((r) => r.aborted));
      expect(await activeIngests(NS)).toEqual([]);
    } finally {
      release();
      proxy.blobs = undefined;
    }
    expect(await pull(adapter.client, image)).toBe(img.config.digest);
  });

  it('pulls the same image twice at once with one download', async () => {
    const repo = 'cri-adapter-test/concurrent';
    const img = bigImage(randomLayers(3, 256 * 1024));
    await pushImage(REG, repo, 'latest', img);
    proxy.reset();
    const image = `${proxy.host}/${repo}:latest`;
    const [a, b] = await Promise.all([pull(adapter.client, image), pull(adapter.client, image)]);
    expect(a).toBe(img.config.digest);
    expect(b).toBe(a);
    for (const blob of [img.config, ...img.layers]) {
      expect(proxy.count('GET', `/v2/${repo}/blobs/${blob.digest}`)).toBe(1);
    }
  });

  it('pulls two images that share layers at once; the shared layer is downloaded once', async () => {
    const repo = 'cri-adapter-test/shared';
    const base = randomLayers(2, 512 * 1024);
    const p = bigImage([...base, ...randomLayers(1, 64 * 1024)]);
    const q = bigImage([...base, ...randomLayers(1, 64 * 1024)]);
    expect(q.layers[0]!.digest).toBe(p.layers[0]!.digest);
    await pushImage(REG, repo, 'p', p);
    await pushImage(REG, repo, 'q', q);
    proxy.reset();
    const [a, b] = await Promise.all([pull(adapter.client, `${proxy.host}/${repo}:p`), pull(adapter.client, `${proxy.host}/${repo}:q`)]);
    expect(a).toBe(p.config.digest);
    expect(b).toBe(q.config.digest);
    for (const shared of p.layers.slice(0, 2)) expect(proxy.count('GET', `/v2/${repo}/blobs/${shared.digest}`)).toBe(1);
    expect(await leases(NS)).toEqual([]);
  });

  it('keeps content it reuses from a removed image safe from GC while the pull runs', async () => {
    const repo = 'cri-adapter-test/gcrace';
    const base = randomLayers(1, 256 * 1024);
    const p = bigImage([...base, ...randomLayers(1, 16 * 1024)]);
    const q = bigImage([...base, ...randomLayers(1, 16 * 1024)]);
    const shared = p.layers[0]!.digest;
    await pushImage(REG, repo, 'p', p);
    await pushImage(REG, repo, 'q', q);
    await pull(adapter.client, `${proxy.host}/${repo}:p`);

    const conn = new ContainerdConnection({ address: h.containerd.address, namespace: NS, callTimeoutMs: 20_000 }, silentLogger());
    await conn.start();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    try {
      // Hold the shared layer only until q's pull has seen it in the store, as a not-yet-collected leftover would be.
      const { lease } = await conn.leases.create({ id: 'it-images-hold', labels: {} });
      await conn.leases.addResource({ id: lease!.id, resource: { id: shared, type: 'content' } });
      await remove(adapter.client, `${proxy.host}/${repo}:p`);

      proxy.reset();
      proxy.blobs = (d) => (d === q.layers[1]!.digest ? { gate } : undefined);
      const pulling = pull(adapter.client, `${proxy.host}/${repo}:q`).then(
        (r) => ({ ok: r }),
        (e: Error) => ({ error: e }),
      );
      await proxy.waitForRequest('GET', q.layers[1]!.digest);
      // the pull has looked at the shared layer (with the fix: leased it; without it, this just times out)
      await waitFor('the pull to lease the shared layer', async () => {
        const { leases: all } = await conn.leases.list({ filters: [] });
        for (const l of all.filter((x) => x.id !== lease!.id)) {
          const { resources } = await conn.leases.listResources({ id: l.id });
          if (resources.some((r) => r.id === shared)) return true;
        }
        return undefined;
      }, { timeoutMs: 3000 }).catch(() => undefined);
      // Now nothing but the running pull can keep the shared layer: drop our hold and collect garbage.
      await conn.leases.delete({ id: lease!.id, sync: false });
      const trigger = 'it-images-gc-trigger';
      await conn.images.create({
        image: {
          name: trigger,
          labels: {},
          target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'1'.repeat(64)}`, size: 1n, annotations: {} },
          createdAt: undefined,
          updatedAt: undefined,
        },
      });
      await conn.images.delete({ name: trigger, sync: true });
      release();
      const result = await pulling;
      expect(result).toEqual({ ok: q.config.digest });
      expect(proxy.count('GET', `/v2/${repo}/blobs/${shared}`)).toBe(0);
    } finally {
      release();
      proxy.blobs = undefined;
      conn.close();
    }
  });

  describe('ImageStatus', () => {
    it('answers an empty response for an image that is not there', async () => {
      const byRef = await status(adapter.client, `${REG}/cri-adapter-test/never-pulled:latest`);
      expect(byRef.image).toBeUndefined();
      expect(byRef.info).toEqual({});
      const byId = await status(adapter.client, `sha256:${'a'.repeat(64)}`);
      expect(byId.image).toBeUndefined();
    });

    it('returns the image config in verbose info, and maps User to uid or username', async () => {
      const repo = 'cri-adapter-test/users';
      const numeric = tinyImage('user 1000', { user: '1000', env: ['A=1'] });
      const named = tinyImage('user app', { user: 'app' });
      const withGroup = tinyImage('user 1000:1000', { user: '1001:1000' });
      await pushImage(REG, repo, 'numeric', numeric);
      await pushImage(REG, repo, 'named', named);
      await pushImage(REG, repo, 'group', withGroup);
      await pull(adapter.client, `${REG}/${repo}:numeric`);
      await pull(adapter.client, `${REG}/${repo}:named`);
      await pull(adapter.client, `${REG}/${repo}:group`);

      const n = await status(adapter.client, `${REG}/${repo}:numeric`, true);
      expect(n.image?.uid?.value).toBe(1000n);
      expect(n.image?.username).toBe('');
      const info = JSON.parse(n.info.info!) as { imageSpec: unknown; chainID: string };
      expect(info.imageSpec).toEqual(JSON.parse(numeric.config.data.toString('utf8')));
      expect(info.chainID).toBe(numeric.diffIds[0]);

      const a = await status(adapter.client, `${REG}/${repo}:named`);
      expect(a.image?.uid).toBeUndefined();
      expect(a.image?.username).toBe('app');
      expect(a.info).toEqual({});

      const g = await status(adapter.client, `${REG}/${repo}:group`);
      expect(g.image?.uid?.value).toBe(1001n);
      // by ID, too
      expect((await status(adapter.client, numeric.config.digest)).image?.repoTags).toEqual([`${REG}/${repo}:numeric`]);
    });
  });

  it('filters ListImages, and StreamImages sends each image exactly once', async () => {
    const repo = 'cri-adapter-test/listing';
    const imgs = Array.from({ length: 5 }, (_, i) => tinyImage(`listing ${i}`));
    for (const [i, img] of imgs.entries()) await pushImage(REG, repo, `v${i}`, img);
    for (let i = 0; i < imgs.length; i++) await pull(adapter.client, `${REG}/${repo}:v${i}`);

    const filtered = await list(adapter.client, `${REG}/${repo}:v2`);
    expect(filtered.map((i) => i.id)).toEqual([imgs[2]!.config.digest]);
    expect(await list(adapter.client, `${REG}/${repo}:nope`)).toEqual([]);

    const all = await list(adapter.client);
    const ids = all.map((i) => i.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const img of imgs) expect(ids).toContain(img.config.digest);

    const batches = await streamImages(adapter.client);
    const streamed = batches.flatMap((b) => b.images.map((i) => i.id));
    expect(streamed.length).toBe(new Set(streamed).size);
    expect([...streamed].sort()).toEqual([...ids].sort());
  });

  it('reports the image filesystem', async () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const res = await adapter.client.image.imageFsInfo(ImageFsInfoRequest.fromPartial({}));
    const fs = res.imageFilesystems[0]!;
    // The mount that holds containerd's overlayfs snapshots: the deepest mount point above that directory.
    const snapshots = path.join(h.containerd.root, 'io.containerd.snapshotter.v1.overlayfs');
    const holder = mountPoints()
      .filter((m) => m === '/' || snapshots === m || snapshots.startsWith(m + '/'))
      .sort((a, b) => b.length - a.length)[0];
    expect(fs.fsId?.mountpoint).toBe(holder);
    expect(fs.usedBytes?.value).toBeGreaterThan(0n);
    expect(fs.inodesUsed?.value).toBeGreaterThan(0n);
    // ns since the epoch, within a few seconds of now (the answer may be cached for 5 s)
    const skew = fs.timestamp - before;
    expect(skew).toBeGreaterThan(-10_000_000_000n);
    expect(skew).toBeLessThan(5_000_000_000n);
  });

  describe('with short timeouts (2 s without data from the registry, 2 s per containerd call)', () => {
    const ns = `${NS}-timeouts`;
    let slow: AdapterProcess;
    beforeAll(async () => {
      slow = await startAdapter({
        containerdAddress: h.containerd.address,
        cniConfDir: h.cni.confDir,
        namespace: ns,
        extraArgs: [...adapterArgs, '--registry-pull-progress-timeout-seconds', '2', '--containerd-call-timeout-seconds', '2'],
      });
    });
    afterAll(async () => {
      await slow?.stop();
    });

    it('times out a registry that stops sending data, leaving nothing behind', async () => {
      const repo = 'cri-adapter-test/stall';
      const img = bigImage(randomLayers(3, 128 * 1024));
      await pushImage(REG, repo, 'latest', img);
      const image = `${proxy.host}/${repo}:latest`;
      proxy.blobs = (d) => (d === img.layers[1]!.digest ? { stall: true } : undefined);
      try {
        const [err, ms] = await timed(() => pullError(slow.client, image));
        expect(ms).toBeGreaterThanOrEqual(1900);
        expect(ms).toBeLessThan(8000);
        expect(err.details).toContain(image);
        expect(err.details).toMatch(/received no data for 2 s/);
        expect(err.code).toBe(4); // DEADLINE_EXCEEDED
        expect(await activeIngests(ns)).toEqual([]);
        expect(await leases(ns)).toEqual([]);
        expect(await imageRecords(ns)).toEqual([]);
        expect(await list(slow.client)).toEqual([]);
      } finally {
        proxy.blobs = undefined;
      }
    });

    it('keeps a pull going past the containerd call timeout while data flows', async () => {
      const repo = 'cri-adapter-test/trickle';
      const img = bigImage(randomLayers(1, 512 * 1024));
      await pushImage(REG, repo, 'latest', img);
      // about 17 pieces of 32 KiB, one every 200 ms: 3.4 s, never 2 s silent
      proxy.blobs = (d) => (d === img.layers[0]!.digest ? { throttle: { chunkBytes: 32 * 1024, intervalMs: 200 } } : undefined);
      try {
        // Like the kubelet, which gives PullImage no deadline.
        const request = PullImageRequest.fromPartial({ image: { image: `${proxy.host}/${repo}:latest` } });
        const [res, ms] = await timed(() => slow.client.image.pullImage(request, { deadline: Infinity }));
        expect(res.imageRef).toBe(img.config.digest);
        expect(ms).toBeGreaterThan(3000);
      } finally {
        proxy.blobs = undefined;
      }
    });
  });

  /** A PullImage the test can cancel, as the kubelet does when the pod goes away; resolves to its gRPC code. */
  function cancellablePull(image: string): { result: Promise<{ code: number }>; cancel: () => void } {
    let cancel!: () => void;
    const result = new Promise<{ code: number }>((resolve) => {
      const call = adapter.client.raw.image.pullImage(PullImageRequest.fromPartial({ image: { image } }), (err) =>
        resolve({ code: err ? err.code : 0 }),
      );
      cancel = () => call.cancel();
    });
    return { result, cancel };
  }

  /**
   * After a pull was given up: the downloads of `layers` it started (at least one) are all seen
   * aborted, its lease is gone, no ingest stays, and `image` has no record.
   */
  async function expectAbandonedPullGone(layers: string[], image: string): Promise<void> {
    const fetched = () => proxy.requests.filter((r) => layers.some((d) => r.url.endsWith(d)));
    expect(fetched().length).toBeGreaterThan(0);
    await waitFor('the abandoned downloads to be cancelled', () => fetched().every((r) => r.aborted));
    await waitFor('the abandoned pull to end', async () => (await leases(NS)).length === 0);
    expect(await activeIngests(NS)).toEqual([]);
    expect(await list(adapter.client, image)).toEqual([]);
  }

  it('a caller that gives up does not fail another caller of the same pull', async () => {
    const repo = 'cri-adapter-test/impatient';
    const img = bigImage(randomLayers(2, 128 * 1024));
    await pushImage(REG, repo, 'shared', img);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const gated = img.layers.map((l) => l.digest);
    proxy.reset();
    proxy.blobs = (d) => (gated.includes(d) ? { gate } : undefined);
    try {
      const impatient = cancellablePull(`${proxy.host}/${repo}:shared`);
      await proxy.waitForRequest('GET', img.layers[0]!.digest);
      const patient = pull(adapter.client, `${proxy.host}/${repo}:shared`);
      await new Promise((r) => setTimeout(r, 200)); // the second caller has joined
      impatient.cancel();
      expect(await impatient.result).toEqual({ code: 1 }); // CANCELLED
      await new Promise((r) => setTimeout(r, 200)); // the adapter has seen the cancellation
      release();
      expect(await patient).toBe(img.config.digest);
      expect(proxy.requests.filter((r) => r.url.endsWith(img.layers[0]!.digest))).toMatchObject([{ status: 200, aborted: false }]);
    } finally {
      release();
      proxy.blobs = undefined;
    }
  });

  // Failed in full `npm test` runs after 46f99b0 (abandoned downloads not all seen cancelled within 20 s);
  // passes alone and after the suites that precede it. Cause not found yet: watch it in full runs.
  it('a lone caller that gives up ends its pull: its downloads are cancelled and nothing stays', async () => {
    const repo = 'cri-adapter-test/impatient-alone';
    const other = bigImage(randomLayers(2, 128 * 1024));
    await pushImage(REG, repo, 'alone', other);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const gated = other.layers.map((l) => l.digest);
    proxy.reset();
    proxy.blobs = (d) => (gated.includes(d) ? { gate } : undefined);
    try {
      const alone = cancellablePull(`${proxy.host}/${repo}:alone`);
      await proxy.waitForRequest('GET', other.layers[0]!.digest);
      alone.cancel();
      expect(await alone.result).toEqual({ code: 1 });
      await expectAbandonedPullGone(gated, `${proxy.host}/${repo}:alone`);
    } finally {
      release();
      proxy.blobs = undefined;
    }
  });

  it('a PullImage whose deadline passes answers DEADLINE_EXCEEDED, and its downloads are cancelled', async () => {
    const repo = 'cri-adapter-test/deadline';
    const img = bigImage(randomLayers(2, 128 * 1024));
    await pushImage(REG, repo, 'latest', img);
    const image = `${proxy.host}/${repo}:latest`;
    const layers = img.layers.map((l) => l.digest);
    proxy.reset();
    // Headers, then nothing until the adapter goes away (its stall timeout is 60 s, far past the deadline).
    proxy.blobs = (d) => (layers.includes(d) ? { stall: true } : undefined);
    try {
      const request = PullImageRequest.fromPartial({ image: { image } });
      const err = await criError(adapter.client.image.pullImage(request, { deadline: Date.now() + 1500 }));
      expect(err.code).toBe(4); // DEADLINE_EXCEEDED
      // grpc-js ends a call at its deadline on both sides by itself; what the daemon's own handler
      // made of it shows in its log line for the call.
      const answer = await waitFor('the daemon to log how the pull ended', () =>
        adapter
          .logs()
          .split('\n')
          .filter((l) => l.includes('"rpc":"PullImage"') && l.includes(repo))
          .map((l) => JSON.parse(l) as { code?: string; error?: string })
          .find((l) => l.code !== undefined),
      );
      expect(answer.code).toBe('DEADLINE_EXCEEDED');
      expect(answer.error).toContain(`pull of ${image}`);
      await expectAbandonedPullGone(layers, image);
    } finally {
      proxy.blobs = undefined;
    }
  });

  it('removes every record of an image by ID, by tag and by digest reference; unknown images are fine', async () => {
    const ns = `${NS}-remove`;
    const rm = await startAdapter({ containerdAddress: h.containerd.address, cniConfDir: h.cni.confDir, namespace: ns, extraArgs: adapterArgs });
    cleanups.push(() => rm.stop());
    const repo = 'cri-adapter-test/removal';
    const img = tinyImage('removal');
    const pushed = await pushImage(REG, repo, 'a', img);
    await pushImage(REG, repo, 'b', img);
    const byDigest = `${REG}/${repo}@${pushed.digest}`;
    const pullBoth = async () => {
      await pull(rm.client, `${REG}/${repo}:a`);
      await pull(rm.client, `${REG}/${repo}:b`);
      const images = await list(rm.client);
      expect(images).toHaveLength(1);
      expect([...images[0]!.repoTags].sort()).toEqual([`${REG}/${repo}:a`, `${REG}/${repo}:b`]);
      expect((await imageRecords(ns)).sort()).toEqual([`${REG}/${repo}:a`, byDigest, `${REG}/${repo}:b`, img.config.digest].sort());
    };
    const expectGone = async () => {
      expect(await list(rm.client)).toEqual([]);
      expect(await imageRecords(ns)).toEqual([]);
      expect((await status(rm.client, `${REG}/${repo}:b`)).image).toBeUndefined();
    };

    for (const how of [img.config.digest, `${REG}/${repo}:a`, byDigest, img.config.digest.slice('sha256:'.length)]) {
      await pullBoth();
      await remove(rm.client, how);
      await expectGone();
    }
    await remove(rm.client, `${REG}/${repo}:never`);
    await remove(rm.client, `sha256:${'b'.repeat(64)}`);
  });

  // Last: replaces the main adapter.
  it('rebuilds the same image list from containerd after the adapter is killed', async () => {
    const normalise = (images: Image[]) =>
      images
        .map((i) => ({ ...i, repoTags: [...i.repoTags].sort(), repoDigests: [...i.repoDigests].sort() }))
        .sort((a, b) => a.id.localeCompare(b.id));
    const before = normalise(await list(adapter.client));
    expect(before.length).toBeGreaterThanOrEqual(15);
    await adapter.kill();
    adapter = await startAdapter({ containerdAddress: h.containerd.address, cniConfDir: h.cni.confDir, namespace: NS, dir: adapterDir, extraArgs: adapterArgs });
    const after = normalise(await list(adapter.client));
    expect(after).toEqual(before);
    // and the restarted adapter knows the names, not only the IDs
    expect((await status(adapter.client, h.images.busybox)).image?.id).toBe(before.find((i) => i.repoTags.includes(h.images.busybox))?.id);
  });
});
