import { Readable } from 'stream';
import {
  AdapterError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  withContext,
} from '../../errors';
import { digestProblem, ParsedReference } from '../reference';
import {
  Authenticator,
  AuthConfig,
  credentialsApply,
  Credentials,
  refusedAccessMessage,
  toCredentials,
  TokenHttpRequest,
  TokenHttpResponse,
} from './auth';
import { DigestMismatchError, errorBodyDetail, isAbortFailure, RegistryAuthError, RegistryFailure, toDomainError } from './errors';
import { Capability, HostsConfig, loadHostsConfig, RegistryEndpoint } from './hosts';
import { digestOf, GuardedBody, hashAlgorithm, readBody, Transport, TransportResponse } from './http';
import { ClassifiedManifest, classifyManifest, schema1Failure } from './manifest';
import { formatPlatform, nodePlatform, selectPlatform } from './platform';
import { Descriptor, ImageIndex, ImageManifest, isIndexMediaType, isManifestMediaType, MANIFEST_ACCEPT, Platform, SCHEMA1_MEDIA_TYPES } from './types';

/**
 * A client for the OCI distribution API (Docker Registry HTTP API v2),
 * limited to what pulling needs: resolve a reference, fetch manifests and
 * blobs, pick this node's platform. It writes nothing anywhere; the puller
 * streams what it returns into containerd's content store.
 */

export interface RegistryClientOptions {
  /** containerd-style hosts.toml directory (registry.configPath); unset means every registry's default upstream. */
  hostsDir?: string;
  /** A request or blob that delivers no bytes for this long fails with DeadlineExceeded. */
  stallTimeoutMs?: number;
  /** Platform to select from indexes; defaults to this node. */
  platform?: Platform;
  userAgent?: string;
  /** Manifests are held in memory; anything larger is refused rather than buffered. */
  maxManifestBytes?: number;
  /** Clock for token expiry. */
  now?: () => number;
  /** Replaces hosts.toml lookup (tests, or a caller that already resolved endpoints). */
  endpoints?: (registry: string) => Promise<RegistryEndpoint[]>;
  /** Non-fatal configuration problems (ignored hosts.toml keys, unpaired certificates). */
  onWarning?: (message: string) => void;
}

export interface PullOptions {
  auth?: AuthConfig;
}

export interface BlobOptions extends PullOptions {
  /** Resume from this byte (content already in the store); honoured only if the server answers 206. */
  offset?: number;
  /** Hash the stream and fail at its end on mismatch (default true; impossible when resuming). */
  verify?: boolean;
}

export interface ResolvedDescriptor {
  descriptor: Descriptor;
  /** Endpoint host that answered. */
  host: string;
}

export interface FetchedManifest {
  descriptor: Descriptor;
  kind: 'manifest' | 'index';
  mediaType: string;
  /** The exact bytes: these, not a re-serialisation, are what must be written and hashed. */
  raw: Buffer;
  digest: string;
  json: ImageManifest | ImageIndex;
  host: string;
}

export interface ResolvedImage {
  reference: ParsedReference;
  /** What the reference points at (an index for multi-platform images); the image record's target. */
  target: Descriptor;
  /** Indexes walked from the target down to the platform manifest, outermost first. */
  indexes: FetchedManifest[];
  /** The manifest for `platform`. */
  manifest: FetchedManifest;
  config: Descriptor;
  layers: Descriptor[];
  platform: Platform;
}

export interface BlobStream {
  /** Bytes from `offset` to the end of the blob. */
  stream: Readable;
  /** Total size of the blob (descriptor.size). */
  size: number;
  /** Where `stream` starts: the requested offset if the registry honoured the range, else 0. */
  offset: number;
  digest: string;
  host: string;
}

/** The surface the containerd-side puller depends on; tests can fake it. */
export interface ImageSource {
  resolve(ref: ParsedReference, signal?: AbortSignal, opts?: PullOptions): Promise<ResolvedDescriptor>;
  fetchManifest(ref: ParsedReference, descriptor: Descriptor, signal?: AbortSignal, opts?: PullOptions): Promise<FetchedManifest>;
  resolveImage(ref: ParsedReference, signal?: AbortSignal, opts?: PullOptions): Promise<ResolvedImage>;
  fetchBlob(ref: ParsedReference, descriptor: Descriptor, signal?: AbortSignal, opts?: BlobOptions): Promise<BlobStream>;
}

const DEFAULT_STALL_MS = 60_000;
const DEFAULT_MAX_MANIFEST = 4 << 20;
const ERROR_BODY_LIMIT = 64 << 10;
const TOKEN_BODY_LIMIT = 1 << 20;
const MAX_INDEX_DEPTH = 4;
const MANIFEST_CACHE_ENTRIES = 32;

function header(res: TransportResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function contentType(res: TransportResponse): string {
  return (header(res, 'content-type') ?? '').split(';')[0].trim().toLowerCase();
}

function describeEndpoint(ep: RegistryEndpoint): string {
  return ep.mirror ? `mirror ${ep.host}` : ep.host;
}

/** A manifest read while resolving, with the bytes and the endpoint that served them. */
type CachedManifest = ClassifiedManifest & { raw: Buffer; host: string };

interface Attempt {
  ep: RegistryEndpoint;
  failure: RegistryFailure;
}

export class RegistryClient implements ImageSource {
  private readonly transport = new Transport();
  private readonly auth: Authenticator;
  private stallMs: number;
  private hostsDir: string | undefined;
  private readonly maxManifest: number;
  private readonly userAgent: string;
  readonly platform: Platform;
  /** Manifests read while resolving, so fetchManifest right after does not download them twice. */
  private readonly manifestCache = new Map<string, CachedManifest>();
  /**
   * The host configuration each pull read, by the pull's parsed reference: read once per pull
   * (as containerd makes one resolver per pull), not once per request of it, and an edit
   * applies to the next pull.
   */
  private hostsConfigs = new WeakMap<ParsedReference, Promise<HostsConfig>>();

  constructor(private readonly opts: RegistryClientOptions = {}) {
    this.auth = new Authenticator({ now: opts.now });
    this.stallMs = opts.stallTimeoutMs ?? DEFAULT_STALL_MS;
    this.hostsDir = opts.hostsDir;
    this.maxManifest = opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST;
    this.userAgent = opts.userAgent ?? 'cri-adapter';
    this.platform = opts.platform ?? nodePlatform();
  }

  close(): void {
    this.transport.close();
  }

  /** Live reload: later pulls read hosts.toml files from this directory (undefined: defaults only). */
  setHostsDir(dir: string | undefined): void {
    this.hostsDir = dir;
    this.hostsConfigs = new WeakMap();
  }

  /** Live reload: the stall timeout of later requests. */
  setStallTimeout(ms: number): void {
    this.stallMs = ms;
  }

  private context(ref: ParsedReference, host: string): string {
    return `pull of ${ref.string()} from ${host}`;
  }

  private async endpoints(ref: ParsedReference, capability: Capability): Promise<RegistryEndpoint[]> {
    let all: RegistryEndpoint[];
    try {
      if (this.opts.endpoints) {
        all = await this.opts.endpoints(ref.domain);
      } else {
        let loaded = this.hostsConfigs.get(ref);
        if (!loaded) {
          loaded = loadHostsConfig(this.hostsDir, ref.domain);
          this.hostsConfigs.set(ref, loaded);
          for (const w of (await loaded).warnings) this.opts.onWarning?.(w);
        }
        all = (await loaded).endpoints;
      }
    } catch (err) {
      throw withContext(err, `pull of ${ref.string()}`);
    }
    const usable = all.filter((e) => e.capabilities.has(capability));
    if (usable.length === 0) {
      const source = all.find((e) => e.source)?.source ?? 'the registry host configuration';
      throw new FailedPreconditionError(
        `pull of ${ref.string()}: no endpoint for ${ref.domain} in ${source} has the "${capability}" capability` +
          (capability === 'resolve' ? ', so tags cannot be resolved; add "resolve" to a host\'s capabilities or pull by digest' : ''),
      );
    }
    return usable;
  }

  /**
   * Tries each endpoint in order. Any failure other than the caller's
   * abort moves on to the next (a dead, empty or corrupt mirror must not
   * block the upstream); the error reported is the last endpoint's, with
   * the earlier ones summarised so an operator sees the whole story.
   */
  private async tryEndpoints<T>(
    ref: ParsedReference,
    capability: Capability,
    signal: AbortSignal | undefined,
    fn: (ep: RegistryEndpoint) => Promise<T>,
  ): Promise<T> {
    const endpoints = await this.endpoints(ref, capability);
    const attempts: Attempt[] = [];
    for (const ep of endpoints) {
      try {
        return await fn(ep);
      } catch (err) {
        if (isAbortFailure(err)) throw toDomainError(err, this.context(ref, ep.host));
        if (!(err instanceof RegistryFailure)) {
          throw err instanceof AdapterError ? err : toDomainError(err, this.context(ref, ep.host));
        }
        attempts.push({ ep, failure: err });
        if (signal?.aborted) break;
      }
    }
    const last = attempts[attempts.length - 1];
    const earlier = attempts.slice(0, -1);
    const suffix = earlier.length
      ? ` (tried first: ${earlier.map((a) => `${describeEndpoint(a.ep)}: ${a.failure.detail}`).join('; ')})`
      : '';
    const e = toDomainError(last.failure, this.context(ref, describeEndpoint(last.ep)));
    if (suffix) e.message += suffix;
    throw e;
  }

  private tokenSender(ep: RegistryEndpoint, signal: AbortSignal | undefined) {
    return async (req: TokenHttpRequest): Promise<TokenHttpResponse> => {
      const sameHost = req.url.host === ep.host;
      const res = await this.transport.send({
        method: req.method,
        url: req.url,
        headers: { 'user-agent': this.userAgent, accept: 'application/json' },
        originHeaders: req.headers,
        body: req.body,
        tls: sameHost ? ep.tls : { ...ep.tls, clientCertificates: [] },
        signal,
        stallTimeoutMs: this.stallMs,
      });
      const body = await readBody(res.body, { limit: TOKEN_BODY_LIMIT, stallTimeoutMs: this.stallMs, signal, url: res.url });
      return { status: res.status, headers: res.headers, body };
    };
  }

  /**
   * One registry request with authentication: send (with whatever
   * credentials are already known to be wanted), and on a 401 answer the
   * challenge once. A second 401 means the credentials themselves were
   * refused.
   */
  private async request(
    ep: RegistryEndpoint,
    ref: ParsedReference,
    creds: Credentials | undefined,
    method: 'GET' | 'HEAD',
    suffix: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<TransportResponse> {
    const url = new URL(`${ep.baseUrl}${ep.pathPrefix}/${ref.path}${suffix}`);
    // Lets a mirror serving several registries know which one is meant (containerd sends the same).
    if (ep.mirror && ep.host !== ref.domain) url.searchParams.set('ns', ref.domain);
    let authorization = this.auth.preemptive(ep.host, ref.path, creds);
    for (let round = 0; ; round++) {
      const originHeaders: Record<string, string | string[]> = { ...ep.headers };
      if (authorization) originHeaders.authorization = authorization;
      const res = await this.transport.send({
        method,
        url,
        headers: { ...headers, 'user-agent': this.userAgent },
        originHeaders,
        tls: ep.tls,
        signal,
        stallTimeoutMs: this.stallMs,
      });
      // A 401 from storage a blob was redirected to is not a challenge our credentials could answer.
      if (res.status !== 401 || res.url.origin !== url.origin) return res;
      const challenge = res.headers['www-authenticate'];
      const body = await this.errorBody(res, signal);
      if (round === 0) {
        const next = await this.auth.authorize(challenge, {
          host: ep.host,
          repository: ref.path,
          credentials: creds,
          sentAuthorization: authorization,
          send: this.tokenSender(ep, signal),
        });
        // Offering the header that was just refused would only be refused again.
        if (next !== authorization) {
          authorization = next;
          continue;
        }
      }
      this.auth.forget(ep.host, ref.path, creds);
      throw new RegistryFailure(RegistryAuthError, refusedAccessMessage(creds, challenge, body, ref.path), { status: 401 });
    }
  }

  /** Reads an error document, or just releases the connection when there is none to read. */
  private async errorBody(res: TransportResponse, signal: AbortSignal | undefined): Promise<Buffer> {
    if (res.method === 'HEAD' || res.body.readableEnded) {
      res.body.resume();
      return Buffer.alloc(0);
    }
    try {
      return await readBody(res.body, { limit: ERROR_BODY_LIMIT, stallTimeoutMs: this.stallMs, signal, url: res.url });
    } catch (err) {
      if (isAbortFailure(err)) throw err;
      return Buffer.alloc(0);
    }
  }

  /** Maps a non-success status to a failure naming what was asked for. */
  private async statusFailure(res: TransportResponse, what: string, ref: ParsedReference, signal: AbortSignal | undefined): Promise<RegistryFailure> {
    const body = await this.errorBody(res, signal);
    const detail = errorBodyDetail(body);
    const status = `HTTP ${res.status}${detail ? `: ${detail}` : ''}`;
    if (res.status === 404) return new RegistryFailure(NotFoundError, `${what} not found (${status})`, { status: 404 });
    if (res.status === 401) {
      return new RegistryFailure(RegistryAuthError, `${res.url.host} refused access to ${what} (${status})`, { status: 401 });
    }
    if (res.status === 403) {
      return new RegistryFailure(RegistryAuthError, `access to ${ref.path} denied (${status}); check the imagePullSecret's permissions`, {
        status: 403,
      });
    }
    if (res.status === 429) {
      return new RegistryFailure(
        ResourceExhaustedError,
        `rate limited (${status}); retry later, or authenticate to get a higher limit`,
        { status: 429 },
      );
    }
    if (res.status >= 500) return new RegistryFailure(UnavailableError, `registry error for ${what} (${status})`, { status: res.status });
    if (res.status === 400) return new RegistryFailure(InvalidArgumentError, `registry rejected the request for ${what} (${status})`, { status: 400 });
    return new RegistryFailure(FailedPreconditionError, `unexpected response for ${what} (${status})`, { status: res.status });
  }

  private cacheKey(ref: ParsedReference, digest: string, creds?: Credentials): string {
    // Scoped to repository and credentials: a cached private manifest must not answer a pull that could not read it.
    return `${ref.name}@${digest}#${creds?.id ?? ''}`;
  }

  private remember(key: string, value: CachedManifest): void {
    if (this.manifestCache.size >= MANIFEST_CACHE_ENTRIES) {
      const oldest = this.manifestCache.keys().next();
      if (!oldest.done) this.manifestCache.delete(oldest.value);
    }
    this.manifestCache.set(key, value);
  }

  private async getManifest(
    ep: RegistryEndpoint,
    ref: ParsedReference,
    creds: Credentials | undefined,
    object: string,
    signal: AbortSignal | undefined,
  ): Promise<ClassifiedManifest & { raw: Buffer; headerDigest?: string }> {
    const res = await this.request(ep, ref, creds, 'GET', `/manifests/${object}`, { accept: MANIFEST_ACCEPT }, signal);
    if (res.status < 200 || res.status >= 300) throw await this.statusFailure(res, `manifest ${object}`, ref, signal);
    const declared = Number(header(res, 'content-length'));
    if (Number.isFinite(declared) && declared > this.maxManifest) {
      res.body.destroy();
      throw new RegistryFailure(FailedPreconditionError, `manifest ${object} is ${declared} bytes, over the ${this.maxManifest}-byte limit`);
    }
    const raw = await readBody(res.body, { limit: this.maxManifest, stallTimeoutMs: this.stallMs, signal, url: res.url });
    const { mediaType, json } = classifyManifest(raw, contentType(res), ep.host);
    return { raw, mediaType, json, headerDigest: header(res, 'docker-content-digest') };
  }

  /** Parses the caller's credentials once, before any network traffic, so a malformed one fails fast. */
  private parseCredentials(ref: ParsedReference, opts: PullOptions | undefined): Credentials | undefined {
    try {
      return toCredentials(opts?.auth);
    } catch (err) {
      throw withContext(err, `pull of ${ref.string()} from ${ref.domain}`);
    }
  }

  private credentialsFor(ep: RegistryEndpoint, opts: PullOptions | undefined, creds: Credentials | undefined): Credentials | undefined {
    return credentialsApply(opts?.auth, ep) ? creds : undefined;
  }

  /**
   * Resolves a reference to the descriptor it names. HEAD first, since it
   * costs no body and does not count against Docker Hub's pull limit;
   * GET when HEAD is unsupported or leaves out the digest.
   */
  async resolve(ref: ParsedReference, signal?: AbortSignal, opts?: PullOptions): Promise<ResolvedDescriptor> {
    const parsed = this.parseCredentials(ref, opts);
    return this.tryEndpoints(ref, ref.digest ? 'pull' : 'resolve', signal, async (ep) => {
      const creds = this.credentialsFor(ep, opts, parsed);
      const head = await this.request(ep, ref, creds, 'HEAD', `/manifests/${ref.object}`, { accept: MANIFEST_ACCEPT }, signal);
      head.body.resume();
      if (head.status === 404) throw await this.statusFailure(head, `manifest ${ref.object}`, ref, signal);
      if (head.status === 403 || head.status === 429) throw await this.statusFailure(head, `manifest ${ref.object}`, ref, signal);
      if (head.status >= 200 && head.status < 300) {
        const mediaType = contentType(head);
        if (SCHEMA1_MEDIA_TYPES.includes(mediaType)) throw schema1Failure();
        const digest = header(head, 'docker-content-digest');
        const size = Number(header(head, 'content-length'));
        const known = isIndexMediaType(mediaType) || isManifestMediaType(mediaType);
        if (ref.digest && digest && digest !== ref.digest && hashAlgorithm(digest) === hashAlgorithm(ref.digest)) {
          throw new RegistryFailure(DigestMismatchError, `registry reports digest ${digest} for ${ref.digest}`, {
            expected: ref.digest,
            actual: digest,
          });
        }
        if (known && Number.isInteger(size) && size > 0 && (ref.digest || (digest && !digestProblem(digest)))) {
          return { descriptor: { mediaType, digest: ref.digest ?? digest!, size }, host: ep.host };
        }
      }
      const got = await this.getManifest(ep, ref, creds, ref.object, signal);
      const algo = ref.digest ? hashAlgorithm(ref.digest)! : 'sha256';
      const actual = digestOf(got.raw, algo);
      if (ref.digest && actual !== ref.digest) {
        throw new RegistryFailure(DigestMismatchError, `manifest bytes hash to ${actual}, not the requested ${ref.digest}`, {
          expected: ref.digest,
          actual,
        });
      }
      if (got.headerDigest && hashAlgorithm(got.headerDigest) === algo && got.headerDigest !== actual) {
        throw new RegistryFailure(
          DigestMismatchError,
          `manifest bytes hash to ${actual}, but the registry's Docker-Content-Digest says ${got.headerDigest}`,
          { expected: got.headerDigest, actual },
        );
      }
      this.remember(this.cacheKey(ref, actual, creds), { raw: got.raw, mediaType: got.mediaType, json: got.json, host: ep.host });
      return { descriptor: { mediaType: got.mediaType, digest: actual, size: got.raw.length }, host: ep.host };
    });
  }

  /** Fetches a manifest or index by descriptor and checks its bytes against the digest. */
  async fetchManifest(ref: ParsedReference, descriptor: Descriptor, signal?: AbortSignal, opts?: PullOptions): Promise<FetchedManifest> {
    const problem = digestProblem(descriptor.digest);
    if (problem) throw new InvalidArgumentError(`pull of ${ref.string()} from ${ref.domain}: ${problem}`);
    const parsed = this.parseCredentials(ref, opts);
    return this.tryEndpoints(ref, 'pull', signal, async (ep) => {
      const creds = this.credentialsFor(ep, opts, parsed);
      const cached = this.manifestCache.get(this.cacheKey(ref, descriptor.digest, creds));
      const got = cached ?? (await this.getManifest(ep, ref, creds, descriptor.digest, signal));
      const actual = digestOf(got.raw, hashAlgorithm(descriptor.digest));
      if (actual !== descriptor.digest) {
        throw new RegistryFailure(DigestMismatchError, `manifest bytes hash to ${actual}, expected ${descriptor.digest}`, {
          expected: descriptor.digest,
          actual,
        });
      }
      if (descriptor.size > 0 && got.raw.length !== descriptor.size) {
        throw new RegistryFailure(DigestMismatchError, `manifest ${descriptor.digest} is ${got.raw.length} bytes; its descriptor says ${descriptor.size}`);
      }
      const kind = isIndexMediaType(got.mediaType) ? 'index' : 'manifest';
      return {
        descriptor: { ...descriptor, mediaType: got.mediaType, size: got.raw.length },
        kind,
        mediaType: got.mediaType,
        raw: got.raw,
        digest: actual,
        json: got.json,
        host: cached?.host ?? ep.host,
      };
    });
  }

  /**
   * Resolves a reference all the way to this node's manifest: follows
   * indexes by platform and returns everything a puller must store.
   */
  async resolveImage(ref: ParsedReference, signal?: AbortSignal, opts?: PullOptions): Promise<ResolvedImage> {
    const top = await this.resolve(ref, signal, opts);
    const indexes: FetchedManifest[] = [];
    let desc = top.descriptor;
    for (let depth = 0; depth <= MAX_INDEX_DEPTH; depth++) {
      const m = await this.fetchManifest(ref, desc, signal, opts);
      if (m.kind === 'manifest') {
        const manifest = m.json as ImageManifest;
        return {
          reference: ref,
          target: top.descriptor,
          indexes,
          manifest: m,
          config: manifest.config,
          layers: manifest.layers,
          platform: desc.platform ?? this.platform,
        };
      }
      const choice = selectPlatform((m.json as ImageIndex).manifests, this.platform);
      if (!choice.descriptor) {
        throw new NotFoundError(
          `${this.context(ref, m.host)}: the image has no manifest for this node's platform ${formatPlatform(this.platform)}; ` +
            `it offers ${choice.available.length ? choice.available.join(', ') : 'no runnable platforms'}`,
        );
      }
      indexes.push(m);
      desc = choice.descriptor;
    }
    throw new FailedPreconditionError(`${this.context(ref, top.host)}: image indexes nest deeper than ${MAX_INDEX_DEPTH} levels`);
  }

  /**
   * Opens a blob for streaming. Mirrors are tried only until one answers
   * with the content; once bytes flow, errors surface on the stream, since
   * switching source mid-blob would splice two responses together.
   */
  async fetchBlob(ref: ParsedReference, descriptor: Descriptor, signal?: AbortSignal, opts?: BlobOptions): Promise<BlobStream> {
    const digest = descriptor.digest;
    const problem = digestProblem(digest);
    if (problem) throw new InvalidArgumentError(`pull of ${ref.string()} from ${ref.domain}: blob ${problem}`);
    if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
      throw new InvalidArgumentError(`pull of ${ref.string()} from ${ref.domain}: blob ${digest} has invalid size ${descriptor.size}`);
    }
    const size = descriptor.size;
    const offset = opts?.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) {
      throw new InvalidArgumentError(`pull of ${ref.string()} from ${ref.domain}: resume offset ${offset} is outside blob ${digest} of ${size} bytes`);
    }
    const parsed = this.parseCredentials(ref, opts);
    return this.tryEndpoints(ref, 'pull', signal, async (ep) => {
      const creds = this.credentialsFor(ep, opts, parsed);
      const headers: Record<string, string> = { accept: '*/*' };
      if (offset > 0 && offset < size) headers.range = `bytes=${offset}-`;
      const res = await this.request(ep, ref, creds, 'GET', `/blobs/${digest}`, headers, signal);
      let start = 0;
      if (res.status === 206 && headers.range) {
        const m = /^bytes (\d+)-/.exec(header(res, 'content-range') ?? '');
        if (!m || Number(m[1]) !== offset) {
          res.body.destroy();
          throw new RegistryFailure(UnavailableError, `blob ${digest}: ${res.url.host} answered the range request with Content-Range "${header(res, 'content-range') ?? ''}"`);
        }
        start = offset;
      } else if (res.status !== 200) {
        throw await this.statusFailure(res, `blob ${digest}`, ref, signal);
      }
      const length = size - start;
      const declared = header(res, 'content-length');
      if (declared !== undefined && Number(declared) !== length) {
        res.body.destroy();
        throw new RegistryFailure(
          DigestMismatchError,
          `blob ${digest} from ${res.url.host} is ${declared} bytes; its descriptor says ${length}${start ? ` from offset ${start}` : ''}`,
        );
      }
      const servedBy = res.url.host !== ep.host ? `, served by ${res.url.host}` : '';
      const context = this.context(ref, describeEndpoint(ep));
      const stream = new GuardedBody(res.body, {
        stallTimeoutMs: this.stallMs,
        signal,
        url: res.url,
        length,
        digest: opts?.verify === false || start > 0 ? undefined : digest,
        wrap: (f) => {
          const e = toDomainError(f, context);
          e.message += ` (blob ${digest}${servedBy})`;
          return e;
        },
      });
      return { stream, size, offset: start, digest, host: ep.host };
    });
  }
}
