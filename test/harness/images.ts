/**
 * Builds OCI images without docker and pushes them to a registry over plain
 * HTTP. Layers are deterministic tars (sorted names, mtime 0, numeric owners)
 * written by a small ustar/PAX writer below, gzipped with node's zlib.
 *
 *   const img = buildImage({ layers: [{ entries: [...] }], config: { cmd: ['sh'] } });
 *   await pushImage('127.0.0.1:5000', 'cri-adapter-test/foo', 'latest', img);
 */
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import * as zlib from 'zlib';
import { run } from './util';

// ---------------------------------------------------------------------------
// Media types

export const MEDIA_TYPE = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

// ---------------------------------------------------------------------------
// Layer description

interface EntryCommon {
  /** Path inside the image, with or without leading "/". */
  path: string;
  /** Permission bits (incl. setuid/setgid/sticky). */
  mode?: number;
  uid?: number;
  gid?: number;
}

export type LayerEntry =
  | (EntryCommon & { type: 'dir' })
  | (EntryCommon & { type: 'file'; content: Buffer | string })
  /** A regular file whose bytes are read from `source` on the build machine. */
  | (EntryCommon & { type: 'file'; source: string })
  | (EntryCommon & { type: 'symlink'; target: string })
  /** Hard link to `target`, an earlier path in the same layer. */
  | (EntryCommon & { type: 'hardlink'; target: string });

export type LayerSpec = (
  | { entries: LayerEntry[] }
  /** A directory on this machine whose contents become the layer root. */
  | { dir: string; uid?: number; gid?: number }
  /** An uncompressed tar, used as is. */
  | { tar: Buffer }
) & {
  /** 'gzip' (default) or 'none'. */
  compression?: 'gzip' | 'none';
};

export interface ImageConfigSpec {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  user?: string;
  workingDir?: string;
  stopSignal?: string;
  labels?: Record<string, string>;
  exposedPorts?: string[];
  volumes?: string[];
  /** Go names; defaults to this machine's. */
  architecture?: string;
  os?: string;
  variant?: string;
}

export interface ImageSpec {
  layers: LayerSpec[];
  config: ImageConfigSpec;
  /** Annotations on the manifest. */
  annotations?: Record<string, string>;
}

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface BuiltImage {
  /** The manifest; its digest is the image's digest. */
  manifest: Blob;
  config: Blob;
  layers: Blob[];
  /** sha256 of each uncompressed layer tar. */
  diffIds: string[];
  platform: Platform;
}

// ---------------------------------------------------------------------------
// Helpers

export function sha256(data: Buffer | string): string {
  return 'sha256:' + crypto.createHash('sha256').update(data).digest('hex');
}

function blob(mediaType: string, data: Buffer): Blob {
  return { mediaType, digest: sha256(data), size: data.length, data };
}

/** node's process.arch → Go's GOARCH (+ variant). */
export function goPlatform(arch: string = process.arch): Platform {
  switch (arch) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64' };
    case 'arm64':
      return { os: 'linux', architecture: 'arm64' };
    case 'arm':
      return { os: 'linux', architecture: 'arm', variant: 'v7' };
    case 'ia32':
      return { os: 'linux', architecture: '386' };
    case 'ppc64':
      return { os: 'linux', architecture: 'ppc64le' };
    default:
      // s390x, riscv64, mips64el, loong64 share their names with Go
      return { os: 'linux', architecture: arch };
  }
}

/** Canonical-ish JSON: object keys sorted, so equal inputs give equal digests. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return '[' + value.map(stableJson).join(',') + ']';
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + stableJson(obj[k])).join(',') + '}';
  }
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------
// Tar writer (ustar headers, PAX records for what does not fit)

const BLOCK = 512;

function octal(value: number, width: number): string {
  // width includes the trailing NUL
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`);
}

interface TarHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  type: '0' | '1' | '2' | '5' | 'x';
  linkname?: string;
}

function headerBlock(h: TarHeader): Buffer {
  const b = Buffer.alloc(BLOCK, 0);
  b.write(h.name, 0, 100, 'utf8');
  b.write(octal(h.mode & 0o7777, 8), 100, 'ascii');
  b.write(octal(h.uid, 8), 108, 'ascii');
  b.write(octal(h.gid, 8), 116, 'ascii');
  b.write(octal(h.size, 12), 124, 'ascii');
  b.write(octal(0, 12), 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(h.type, 156, 'ascii');
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write(octal(0, 8), 329, 'ascii');
  b.write(octal(0, 8), 337, 'ascii');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(octal(sum, 7) + ' ', 148, 'ascii');
  return b;
}

function pad(size: number): Buffer {
  const rem = size % BLOCK;
  return Buffer.alloc(rem === 0 ? 0 : BLOCK - rem, 0);
}

function normalizePath(p: string): string {
  const n = path.posix.normalize('/' + p).replace(/^\/+/, '');
  if (n === '' || n === '.') throw new Error(`invalid layer path "${p}"`);
  return n;
}

/**
 * Serialise entries into an uncompressed tar. Entries are sorted by path
 * (parents first), hard links after everything else: an unpacker links to a
 * target that must already be there (`bin/[` sorts before `bin/busybox`).
 */
export function writeTar(entries: LayerEntry[]): Buffer {
  const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const named = entries.map((e) => ({ e, name: normalizePath(e.path) }));
  const sorted = [...named.filter((x) => x.e.type !== 'hardlink').sort(byName), ...named.filter((x) => x.e.type === 'hardlink').sort(byName)];
  const seen = new Set<string>();
  const parts: Buffer[] = [];
  for (const { e, name: rawName } of sorted) {
    if (seen.has(rawName)) throw new Error(`duplicate layer path "${rawName}"`);
    seen.add(rawName);
    let data: Buffer = Buffer.alloc(0);
    let type: TarHeader['type'];
    let linkname: string | undefined;
    let mode: number;
    let name = rawName;
    switch (e.type) {
      case 'dir':
        type = '5';
        name += '/';
        mode = e.mode ?? 0o755;
        break;
      case 'file':
        type = '0';
        data = 'source' in e ? fs.readFileSync(e.source) : Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content);
        mode = e.mode ?? 0o644;
        break;
      case 'symlink':
        type = '2';
        linkname = e.target;
        mode = e.mode ?? 0o777;
        break;
      case 'hardlink':
        type = '1';
        linkname = normalizePath(e.target);
        mode = e.mode ?? 0o644;
        break;
    }
    const uid = e.uid ?? 0;
    const gid = e.gid ?? 0;
    const pax: Buffer[] = [];
    if (Buffer.byteLength(name) > 100 || /[^\x20-\x7e]/.test(name)) pax.push(paxRecord('path', name));
    if (linkname !== undefined && (Buffer.byteLength(linkname) > 100 || /[^\x20-\x7e]/.test(linkname))) {
      pax.push(paxRecord('linkpath', linkname));
    }
    if (uid > 0o7777777) pax.push(paxRecord('uid', String(uid)));
    if (gid > 0o7777777) pax.push(paxRecord('gid', String(gid)));
    if (data.length > 0o77777777777) throw new Error(`file too large for this tar writer: ${name}`);
    if (pax.length > 0) {
      const body = Buffer.concat(pax);
      parts.push(
        headerBlock({ name: `PaxHeaders/${path.posix.basename(rawName)}`.slice(0, 99), mode: 0o644, uid: 0, gid: 0, size: body.length, type: 'x' }),
        body,
        pad(body.length),
      );
    }
    parts.push(
      headerBlock({
        name: Buffer.byteLength(name) > 100 ? name.slice(0, 99) : name,
        mode,
        uid: Math.min(uid, 0o7777777),
        gid: Math.min(gid, 0o7777777),
        size: data.length,
        type,
        linkname: linkname !== undefined && Buffer.byteLength(linkname) > 100 ? linkname.slice(0, 99) : linkname,
      }),
      data,
      pad(data.length),
    );
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(parts);
}

/** Entries for everything under `root` (lstat: symlinks stay symlinks, hard links are kept). */
export function entriesFromDir(root: string, owner: { uid?: number; gid?: number } = {}): LayerEntry[] {
  const found: { rel: string; abs: string; st: fs.Stats }[] = [];
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      found.push({ rel: r, abs, st });
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  // the tar's order (writeTar sorts the same way), so a hard link's target always comes first
  found.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const inodes = new Map<string, string>();
  return found.map(({ rel, abs, st }): LayerEntry => {
    const common = { path: rel, mode: st.mode & 0o7777, uid: owner.uid ?? st.uid, gid: owner.gid ?? st.gid };
    if (st.isDirectory()) return { ...common, type: 'dir' };
    if (st.isSymbolicLink()) return { ...common, type: 'symlink', target: fs.readlinkSync(abs) };
    if (!st.isFile()) throw new Error(`unsupported file type in layer dir: ${abs}`);
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = inodes.get(key);
      if (first !== undefined) return { ...common, type: 'hardlink', target: first };
      inodes.set(key, rel);
    }
    return { ...common, type: 'file', source: abs };
  });
}

// ---------------------------------------------------------------------------
// Image building

export function buildLayer(spec: LayerSpec): { blob: Blob; diffId: string } {
  let tar: Buffer;
  if ('tar' in spec) tar = spec.tar;
  else if ('dir' in spec) tar = writeTar(entriesFromDir(spec.dir, { uid: spec.uid, gid: spec.gid }));
  else tar = writeTar(spec.entries);
  const diffId = sha256(tar);
  if (spec.compression === 'none') return { blob: blob(MEDIA_TYPE.layer, tar), diffId };
  // level 6, no name/mtime in the gzip header: deterministic on a given zlib
  return { blob: blob(MEDIA_TYPE.layerGzip, zlib.gzipSync(tar, { level: 6 })), diffId };
}

export function buildImage(spec: ImageSpec): BuiltImage {
  const layers = spec.layers.map(buildLayer);
  const c = spec.config;
  const host = goPlatform();
  const platform: Platform = {
    architecture: c.architecture ?? host.architecture,
    os: c.os ?? host.os,
    variant: c.architecture === undefined ? host.variant : c.variant,
  };
  const toSet = (list?: string[]): Record<string, Record<string, never>> | undefined =>
    list === undefined ? undefined : Object.fromEntries(list.map((k) => [k, {}]));
  const configJson = {
    created: '1970-01-01T00:00:00Z',
    architecture: platform.architecture,
    os: platform.os,
    variant: platform.variant,
    config: {
      Env: c.env,
      Entrypoint: c.entrypoint,
      Cmd: c.cmd,
      User: c.user,
      WorkingDir: c.workingDir,
      StopSignal: c.stopSignal,
      Labels: c.labels,
      ExposedPorts: toSet(c.exposedPorts),
      Volumes: toSet(c.volumes),
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'cri-adapter test harness' })),
  };
  const config = blob(MEDIA_TYPE.config, Buffer.from(stableJson(configJson)));
  const manifestJson = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.manifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.blob.mediaType, digest: l.blob.digest, size: l.blob.size })),
    annotations: spec.annotations,
  };
  const manifest = blob(MEDIA_TYPE.manifest, Buffer.from(stableJson(manifestJson)));
  return { manifest, config, layers: layers.map((l) => l.blob), diffIds: layers.map((l) => l.diffId), platform };
}

export interface IndexEntry {
  image: BuiltImage;
  /** Defaults to the image's own platform. */
  platform?: Platform;
}

export function buildIndex(entries: IndexEntry[], annotations?: Record<string, string>): Blob {
  const json = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.index,
    manifests: entries.map((e) => {
      const p = e.platform ?? e.image.platform;
      return {
        mediaType: e.image.manifest.mediaType,
        digest: e.image.manifest.digest,
        size: e.image.manifest.size,
        platform: { architecture: p.architecture, os: p.os, variant: p.variant },
      };
    }),
    annotations,
  };
  return blob(MEDIA_TYPE.index, Buffer.from(stableJson(json)));
}

// ---------------------------------------------------------------------------
// Registry client (plain HTTP)

export interface PushAuth {
  username: string;
  password: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(
  method: string,
  url: URL,
  opts: { body?: Buffer; contentType?: string; auth?: PushAuth; accept?: string } = {},
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'content-length': opts.body?.length ?? 0 };
    if (opts.contentType) headers['content-type'] = opts.contentType;
    if (opts.accept) headers.accept = opts.accept;
    if (opts.auth) headers.authorization = 'Basic ' + Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64');
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${url.href}: timeout`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function expectStatus(res: HttpResponse, ok: number[], what: string): void {
  if (!ok.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
  }
}

/** Upload one blob unless the registry has it (HEAD). */
export async function pushBlob(registryHost: string, repo: string, b: Blob, auth?: PushAuth): Promise<void> {
  const base = `http://${registryHost}`;
  const head = await request('HEAD', new URL(`/v2/${repo}/blobs/${b.digest}`, base), { auth });
  if (head.status === 200) return;
  const start = await request('POST', new URL(`/v2/${repo}/blobs/uploads/`, base), { auth });
  expectStatus(start, [202], `start upload to ${repo}`);
  const location = start.headers.location;
  if (!location) throw new Error(`upload to ${repo}: no Location header`);
  const url = new URL(location, base);
  url.searchParams.set('digest', b.digest);
  const put = await request('PUT', url, { body: b.data, contentType: 'application/octet-stream', auth });
  expectStatus(put, [201], `upload ${b.digest} to ${repo}`);
}

/** PUT a manifest or index under a tag or digest reference; returns the registry's digest. */
export async function pushManifest(registryHost: string, repo: string, reference: string, m: Blob, auth?: PushAuth): Promise<string> {
  const res = await request('PUT', new URL(`/v2/${repo}/manifests/${reference}`, `http://${registryHost}`), {
    body: m.data,
    contentType: m.mediaType,
    auth,
  });
  expectStatus(res, [201], `push manifest ${repo}:${reference}`);
  const digest = res.headers['docker-content-digest'];
  return typeof digest === 'string' ? digest : m.digest;
}

export interface PushedImage {
  /** host/repo:tag */
  reference: string;
  /** host/repo@sha256:… */
  digestReference: string;
  digest: string;
}

/** Push an image's blobs and manifest; `tag` may also be a digest. */
export async function pushImage(
  registryHost: string,
  repo: string,
  tag: string,
  image: BuiltImage,
  auth?: PushAuth,
): Promise<PushedImage> {
  await Promise.all([image.config, ...image.layers].map((b) => pushBlob(registryHost, repo, b, auth)));
  const digest = await pushManifest(registryHost, repo, tag, image.manifest, auth);
  const sep = tag.startsWith('sha256:') ? '@' : ':';
  return { reference: `${registryHost}/${repo}${sep}${tag}`, digestReference: `${registryHost}/${repo}@${digest}`, digest };
}

/** Push several single-platform images and an OCI image index over them under `tag`. */
export async function pushIndex(
  registryHost: string,
  repo: string,
  tag: string,
  entries: IndexEntry[],
  auth?: PushAuth,
  annotations?: Record<string, string>,
): Promise<PushedImage & { index: Blob }> {
  for (const e of entries) await pushImage(registryHost, repo, e.image.manifest.digest, e.image, auth);
  const index = buildIndex(entries, annotations);
  const digest = await pushManifest(registryHost, repo, tag, index, auth);
  return { reference: `${registryHost}/${repo}:${tag}`, digestReference: `${registryHost}/${repo}@${digest}`, digest, index };
}

// ---------------------------------------------------------------------------
// The harness's standard images

export const BUSYBOX_REPO = 'cri-adapter-test/busybox';
export const BUSYBOX_TAG = 'latest';
export const PAUSE_REPO = 'cri-adapter-test/pause';
export const PAUSE_TAG = '3.10';
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'app:x:1000:1000:app:/home/app:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  '',
].join('\n');

export const GROUP = ['root:x:0:', 'app:x:1000:', 'extra:x:2000:app', 'nobody:x:65534:', ''].join('\n');

/**
 * busybox's applets next to a copy of the binary, with these /etc/passwd and
 * /etc/group. Applets are symlinks, or hard links (`links: 'hard'`) as in
 * the public busybox images, where masking /bin/ls must not mask the binary.
 */
export function busyboxEntries(
  busybox = '/bin/busybox',
  users = { passwd: PASSWD, group: GROUP },
  links: 'symbolic' | 'hard' = 'symbolic',
): LayerEntry[] {
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '' && !s.includes('/') && s !== 'busybox');
  const entries: LayerEntry[] = [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', source: busybox, mode: 0o755 },
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/passwd', content: users.passwd },
    { type: 'file', path: 'etc/group', content: users.group },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'root', mode: 0o700 },
    { type: 'dir', path: 'home' },
    { type: 'dir', path: 'home/app', uid: 1000, gid: 1000 },
  ];
  const taken = new Set(entries.map((e) => e.path));
  const link = (p: string): LayerEntry =>
    // containerd chmods a hard link's target to the link header's mode
    links === 'hard' ? { type: 'hardlink', path: p, target: 'bin/busybox', mode: 0o755 } : { type: 'symlink', path: p, target: 'busybox' };
  for (const a of applets) {
    if (!taken.has(`bin/${a}`)) entries.push(link(`bin/${a}`));
    taken.add(`bin/${a}`);
  }
  if (!taken.has('bin/sh')) entries.push(link('bin/sh'));
  return entries;
}

export function busyboxImage(busybox = '/bin/busybox'): BuiltImage {
  return buildImage({ layers: [{ entries: busyboxEntries(busybox) }], config: { cmd: ['sh'], env: [DEFAULT_PATH] } });
}

/** A C file of the harness (`rel` below test/harness): next to this file under ts-jest, or in the source tree when run from dist/. */
export function harnessSourcePath(rel: string): string {
  const candidates = [path.join(__dirname, rel), path.resolve(__dirname, '..', '..', '..', 'test', 'harness', rel)];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`${rel} not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Compile one C file of the harness statically into `outDir`/`name` (reused if already there). */
export async function compileStatic(rel: string, outDir: string, name: string): Promise<string> {
  const out = path.join(outDir, name);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  await run('gcc', ['-static', '-Os', '-Wall', '-Wextra', '-Werror', '-o', tmp, harnessSourcePath(rel)], { timeoutMs: 120_000 });
  await run('strip', [tmp]).catch(() => undefined);
  fs.renameSync(tmp, out);
  return out;
}

/** The pause program, compiled into `outDir`. */
export function compilePause(outDir: string): Promise<string> {
  return compileStatic(path.join('pause', 'pause.c'), outDir, 'pause');
}

export function pauseImage(pauseBinary: string): BuiltImage {
  return buildImage({
    layers: [{ entries: [{ type: 'file', path: 'pause', source: pauseBinary, mode: 0o755 }] }],
    config: { entrypoint: ['/pause'], user: '65535:65535', env: [DEFAULT_PATH] },
  });
}
