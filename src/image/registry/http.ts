import { createHash, Hash } from 'crypto';
import { promises as fsp } from 'fs';
import * as http from 'http';
import * as https from 'https';
import { Readable } from 'stream';
import * as tls from 'tls';
import { DeadlineExceededError, FailedPreconditionError, UnavailableError } from '../../errors';
import { abortFailure, DigestMismatchError, RegistryFailure } from './errors';
import type { TlsSettings } from './hosts';

/**
 * The HTTP exchange underneath the registry client: TLS per endpoint,
 * redirects that do not leak credentials, and timeouts that measure
 * silence rather than total time (a 2 GB layer on a slow link is fine; a
 * connection that stopped sending is not).
 */

const MAX_REDIRECTS = 5;

export interface TransportRequest {
  method: 'GET' | 'HEAD' | 'POST';
  url: URL;
  /** Safe to send wherever a redirect leads (Accept, User-Agent, Range). */
  headers: Record<string, string | string[]>;
  /** Only for the original origin: Authorization and hosts.toml headers. */
  originHeaders?: Record<string, string | string[]>;
  body?: Buffer;
  tls: TlsSettings;
  signal?: AbortSignal;
  /** Fail if nothing arrives for this long before the response headers. */
  stallTimeoutMs: number;
  followRedirects?: boolean;
}

export interface TransportResponse {
  /** The method finally used (a 303 turns POST into GET). */
  method: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Final URL after redirects. */
  url: URL;
  /** Must be consumed or destroyed by the caller. */
  body: http.IncomingMessage;
}

export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** A stall's message is phrased to follow "pull of X from Y" without a colon. */
export function stallFailure(ms: number): RegistryFailure {
  return new RegistryFailure(DeadlineExceededError, `received no data for ${formatSeconds(ms)}`, { inline: true });
}

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function networkFailure(err: unknown, url: URL): RegistryFailure {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  const msg = e?.message ?? String(err);
  const where = url.host;
  if (TLS_TRUST_CODES.has(code)) {
    return new RegistryFailure(
      FailedPreconditionError,
      `the TLS certificate of ${where} is not trusted (${code}: ${msg}); add its CA to "ca" in this registry's hosts.toml, or set skip_verify = true only for testing`,
      { cause: err },
    );
  }
  if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(msg)) {
    return new RegistryFailure(
      FailedPreconditionError,
      `TLS handshake with ${where} failed (${msg}); if it serves plain HTTP, write its URL as http://${where} in hosts.toml`,
      { cause: err },
    );
  }
  const plain: Record<string, string> = {
    ECONNREFUSED: `connection to ${where} refused`,
    ENOTFOUND: `host name ${url.hostname} does not resolve (DNS)`,
    EAI_AGAIN: `DNS lookup of ${url.hostname} failed temporarily`,
    ECONNRESET: `connection to ${where} was reset`,
    EPIPE: `connection to ${where} was closed while sending`,
    ETIMEDOUT: `connection to ${where} timed out`,
    EHOSTUNREACH: `${where} is unreachable (no route to host)`,
    ENETUNREACH: `${where} is unreachable (network unreachable)`,
  };
  return new RegistryFailure(UnavailableError, plain[code] ?? `request to ${where} failed: ${code ? `${code} ` : ''}${msg}`, {
    cause: err,
  });
}

async function readPem(file: string, what: string): Promise<{ data: Buffer; mtime: number }> {
  try {
    const [data, st] = await Promise.all([fsp.readFile(file), fsp.stat(file)]);
    return { data, mtime: st.mtimeMs };
  } catch (err) {
    throw new RegistryFailure(
      FailedPreconditionError,
      `cannot read ${what} ${file} named in the registry host configuration: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Keeps one keep-alive agent per distinct TLS setup; a changed file (mtime) gets a new agent. */
export class Transport {
  private readonly agents = new Map<string, http.Agent>();
  private readonly plainAgent = new http.Agent({ keepAlive: true });

  private async agentFor(url: URL, settings: TlsSettings, sameOrigin: boolean): Promise<http.Agent> {
    if (url.protocol === 'http:') return this.plainAgent;
    // Client certificates identify us to the registry; a storage host it redirects to has no business seeing them.
    const certs = sameOrigin ? settings.clientCertificates : [];
    const cas = await Promise.all(settings.caFiles.map((f) => readPem(f, 'CA certificate file')));
    const pairs = await Promise.all(
      certs.map(async (c) => ({
        cert: await readPem(c.certFile, 'client certificate file'),
        key: c.keyFile ? await readPem(c.keyFile, 'client key file') : undefined,
      })),
    );
    const key = JSON.stringify([
      settings.skipVerify,
      settings.caFiles.map((f, i) => [f, cas[i].mtime]),
      certs.map((c, i) => [c.certFile, c.keyFile, pairs[i].cert.mtime, pairs[i].key?.mtime]),
    ]);
    let agent = this.agents.get(key);
    if (!agent) {
      const options: https.AgentOptions = { keepAlive: true, rejectUnauthorized: !settings.skipVerify };
      // Custom CAs add to the system roots (as containerd does) instead of replacing them.
      if (cas.length > 0) options.ca = [...tls.rootCertificates, ...cas.map((c) => c.data.toString('utf8'))];
      if (pairs.length > 0) {
        options.cert = pairs.map((p) => p.cert.data);
        options.key = pairs.map((p) => (p.key ?? p.cert).data);
      }
      agent = new https.Agent(options);
      this.agents.set(key, agent);
    }
    return agent;
  }

  async send(req: TransportRequest): Promise<TransportResponse> {
    let url = req.url;
    let method = req.method;
    let body = req.body;
    let sameOrigin = true;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string | string[]> = { ...req.headers };
      if (sameOrigin) Object.assign(headers, req.originHeaders ?? {});
      if (body) headers['content-length'] = String(body.length);
      const agent = await this.agentFor(url, req.tls, sameOrigin);
      const res = await exchange(method, url, headers, body, agent, req.signal, req.stallTimeoutMs);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && location && req.followRedirects !== false) {
        res.resume();
        if (hop >= MAX_REDIRECTS) {
          throw new RegistryFailure(UnavailableError, `more than ${MAX_REDIRECTS} redirects, last to ${location}`);
        }
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new RegistryFailure(UnavailableError, `${url.host} redirected to an invalid location "${location}"`);
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new RegistryFailure(UnavailableError, `${url.host} redirected to unsupported URL scheme ${next.protocol}`);
        }
        if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
        }
        // Once the chain has left the registry's origin it never regains its credentials.
        sameOrigin = sameOrigin && next.origin === req.url.origin;
        url = next;
        continue;
      }
      return { method, status, headers: res.headers, url, body: res };
    }
  }

  close(): void {
    this.plainAgent.destroy();
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

function exchange(
  method: string,
  url: URL,
  headers: Record<string, string | string[]>,
  body: Buffer | undefined,
  agent: http.Agent,
  signal: AbortSignal | undefined,
  stallMs: number,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortFailure(signal));
      return;
    }
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request({
      method,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || undefined,
      path: url.pathname + url.search,
      headers,
      agent,
    });
    let settled = false;
    const onAbort = () => fail(abortFailure(signal!));
    const timer = setTimeout(() => fail(stallFailure(stallMs)), stallMs);
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    function fail(f: RegistryFailure): void {
      if (settled) return;
      settled = true;
      cleanup();
      req.destroy();
      reject(f);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('response', (res) => {
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      cleanup();
      resolve(res);
    });
    req.on('error', (err) => fail(networkFailure(err, url)));
    req.end(body);
  });
}

/** Reads a whole (small) body: manifests, token responses, error documents. */
export function readBody(
  res: http.IncomingMessage,
  opts: { limit: number; stallTimeoutMs: number; signal?: AbortSignal; url: URL },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(stallFailure(opts.stallTimeoutMs)), opts.stallTimeoutMs);
    };
    const onAbort = () => fail(abortFailure(opts.signal!));
    const finish = () => {
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    function fail(f: RegistryFailure): void {
      if (done) return;
      finish();
      res.destroy();
      reject(f);
    }
    if (opts.signal?.aborted) {
      fail(abortFailure(opts.signal));
      return;
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    arm();
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > opts.limit) {
        fail(new RegistryFailure(FailedPreconditionError, `response from ${opts.url.host} is larger than the ${opts.limit}-byte limit`));
        return;
      }
      chunks.push(chunk);
      arm();
    });
    res.on('end', () => {
      if (done) return;
      finish();
      resolve(Buffer.concat(chunks));
    });
    res.on('error', (err) => fail(networkFailure(err, opts.url)));
    res.on('close', () => {
      if (!done && !res.complete) fail(new RegistryFailure(UnavailableError, `connection to ${opts.url.host} closed before the response was complete`));
    });
  });
}

export function hashAlgorithm(digest: string): string | undefined {
  const algo = digest.slice(0, digest.indexOf(':'));
  return ['sha256', 'sha384', 'sha512'].includes(algo) ? algo : undefined;
}

export function digestOf(data: Buffer, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

export interface GuardOptions {
  stallTimeoutMs: number;
  signal?: AbortSignal;
  url: URL;
  /** Bytes this stream must deliver. */
  length: number;
  /** Digest to verify at the end; only when the stream starts at byte 0. */
  digest?: string;
  /** Turns a failure into the error the consumer sees (adds reference and host). */
  wrap: (f: RegistryFailure) => Error;
}

/**
 * Wraps a response body so it (a) errors when no bytes arrive for the stall
 * timeout while the consumer is actually waiting, (b) honours the abort
 * signal after the call returned, and (c) checks length and digest, so a
 * truncated or altered layer never reaches the content store as complete.
 * The timer is disarmed while the consumer applies backpressure: a slow
 * disk is not a stalled registry.
 */
export class GuardedBody extends Readable {
  private timer?: NodeJS.Timeout;
  private received = 0;
  private readonly hash?: Hash;
  private ended = false;
  private readonly onAbort: () => void;

  constructor(
    private readonly src: http.IncomingMessage,
    private readonly opts: GuardOptions,
  ) {
    super({ highWaterMark: 1 << 20 });
    const algo = opts.digest ? hashAlgorithm(opts.digest) : undefined;
    if (algo) this.hash = createHash(algo);
    this.onAbort = () => this.destroy(opts.wrap(abortFailure(opts.signal!)));
    if (opts.signal?.aborted) {
      queueMicrotask(this.onAbort);
    } else {
      opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    }
    src.pause();
    src.on('data', (chunk: Buffer) => this.onData(chunk));
    src.on('end', () => this.onEnd());
    src.on('error', (err) => this.destroy(opts.wrap(networkFailure(err, opts.url))));
    src.on('close', () => {
      if (!this.ended && !this.destroyed) {
        this.destroy(opts.wrap(this.truncated()));
      }
    });
  }

  private truncated(): RegistryFailure {
    return new RegistryFailure(
      UnavailableError,
      `connection to ${this.opts.url.host} closed after ${this.received} of ${this.opts.length} bytes`,
    );
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.destroy(this.opts.wrap(stallFailure(this.opts.stallTimeoutMs))), this.opts.stallTimeoutMs);
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  override _read(): void {
    if (this.ended || this.destroyed) return;
    this.arm();
    this.src.resume();
  }

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    this.received += chunk.length;
    if (this.received > this.opts.length) {
      this.destroy(
        this.opts.wrap(
          new RegistryFailure(UnavailableError, `${this.opts.url.host} sent more than the expected ${this.opts.length} bytes`),
        ),
      );
      return;
    }
    this.hash?.update(chunk);
    if (this.push(chunk)) {
      this.arm();
    } else {
      this.disarm();
      this.src.pause();
    }
  }

  private onEnd(): void {
    if (this.destroyed) return;
    this.ended = true;
    this.disarm();
    if (this.received !== this.opts.length) {
      this.destroy(this.opts.wrap(this.truncated()));
      return;
    }
    if (this.hash && this.opts.digest) {
      const actual = `${hashAlgorithm(this.opts.digest)}:${this.hash.digest('hex')}`;
      if (actual !== this.opts.digest) {
        this.destroy(
          this.opts.wrap(
            new RegistryFailure(DigestMismatchError, `content from ${this.opts.url.host} has digest ${actual}, expected ${this.opts.digest}`, {
              expected: this.opts.digest,
              actual,
            }),
          ),
        );
        return;
      }
    }
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.disarm();
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    if (!this.src.destroyed) this.src.destroy();
    cb(err);
  }
}
