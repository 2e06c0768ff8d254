import { promises as fsp } from 'fs';
import * as path from 'path';
import { parse as parseToml } from 'smol-toml';
import { FailedPreconditionError, InvalidArgumentError } from '../../errors';
import { quote } from '../../util/bounds';

/**
 * containerd's registry host configuration (the `config_path` layout):
 *
 *   <configDir>/<registry>/hosts.toml      e.g. docker.io, 127.0.0.1:5000
 *   <configDir>/_default/hosts.toml        any registry without its own dir
 *
 * Operators already write these files for containerd, so reading them the
 * same way lets one /etc/containerd/certs.d serve both; where containerd's
 * behaviour is surprising we still follow it, and say so.
 */

export type Capability = 'pull' | 'resolve' | 'push';
const ALL_CAPABILITIES: readonly Capability[] = ['pull', 'resolve', 'push'];

export interface ClientCertificate {
  certFile: string;
  /** Absent when the key sits in the same PEM file as the certificate. */
  keyFile?: string;
}

export interface TlsSettings {
  skipVerify: boolean;
  /** Extra CA bundles, trusted in addition to the system roots. */
  caFiles: string[];
  clientCertificates: ClientCertificate[];
}

export interface RegistryEndpoint {
  /** The registry the reference names (its hosts.toml key), e.g. `docker.io`. */
  registry: string;
  scheme: 'http' | 'https';
  /** host[:port] actually contacted, e.g. `registry-1.docker.io`. */
  host: string;
  /** `scheme://host`. */
  baseUrl: string;
  /** API root path: `/v2`, `<path>/v2`, or the URL path verbatim with override_path. */
  pathPrefix: string;
  capabilities: ReadonlySet<Capability>;
  tls: TlsSettings;
  /** Extra request headers; only ever sent to this endpoint's own host. */
  headers: Record<string, string[]>;
  /** True for `[host."…"]` entries; false for the registry itself (`server`). */
  mirror: boolean;
  /** The file or directory this came from, so errors can point at it. */
  source?: string;
}

export interface HostsConfig {
  endpoints: RegistryEndpoint[];
  /** Keys that were ignored; containerd ignores them too, but a typo deserves a log line. */
  warnings: string[];
}

export const DEFAULT_HOST_DIR = '_default';
const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';
const KNOWN_KEYS = new Set(['capabilities', 'ca', 'client', 'skip_verify', 'header', 'override_path']);

function configError(source: string, registry: string, reason: string): FailedPreconditionError {
  return new FailedPreconditionError(`registry host configuration ${source} (for ${registry}) is invalid: ${reason}`);
}

/**
 * The registry itself when nothing is configured. docker.io is only a name:
 * its API lives on registry-1.docker.io.
 */
export function defaultUpstream(registry: string): RegistryEndpoint {
  const host = registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
  return {
    registry,
    scheme: 'https',
    host,
    baseUrl: `https://${host}`,
    pathPrefix: '/v2',
    capabilities: new Set(ALL_CAPABILITIES),
    tls: { skipVerify: false, caFiles: [], clientCertificates: [] },
    headers: {},
    mirror: false,
  };
}

/**
 * Directories searched for a registry, best first. `host_port_` comes first
 * because containerd looks there too (":" is not allowed in Windows paths).
 */
export function hostDirCandidates(configDir: string, registry: string): string[] {
  const out: string[] = [];
  const colon = registry.lastIndexOf(':');
  if (colon > 0 && !registry.endsWith(']')) {
    out.push(path.join(configDir, `${registry.slice(0, colon)}_${registry.slice(colon + 1)}_`));
  }
  out.push(path.join(configDir, registry), path.join(configDir, DEFAULT_HOST_DIR));
  return out;
}

interface HostTable {
  capabilities?: unknown;
  ca?: unknown;
  client?: unknown;
  skip_verify?: unknown;
  header?: unknown;
  override_path?: unknown;
}

function absolute(p: string, baseDir: string): string {
  return path.isAbsolute(p) ? p : path.join(baseDir, p);
}

function stringList(value: unknown, what: string, fail: (r: string) => Error): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw fail(`${what} must be a string or a list of strings`);
}

/** Turns one server URL plus its table into an endpoint; `server` may be empty (use the default). */
function buildEndpoint(
  registry: string,
  server: string,
  table: HostTable,
  mirror: boolean,
  baseDir: string,
  fail: (r: string) => Error,
): RegistryEndpoint {
  const where = mirror ? `[host."${server}"]` : 'top level';
  let ep: RegistryEndpoint;
  if (server === '') {
    ep = defaultUpstream(registry);
  } else {
    // Like containerd: no scheme means https; plain http only when written out.
    const withScheme = /^https?:\/\//i.test(server) ? server : `https://${server}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw fail(`${mirror ? 'host' : 'server'} "${server}" is not a valid URL`);
    }
    if (url.username || url.password) {
      throw fail(`${mirror ? 'host' : 'server'} "${server}" must not carry credentials in the URL`);
    }
    if (url.search || url.hash) {
      throw fail(`${mirror ? 'host' : 'server'} "${server}" must not have a query or fragment`);
    }
    let host = url.host;
    // The Hub's web front is not its API endpoint.
    if (host === DOCKER_HUB || host === 'index.docker.io') host = DOCKER_HUB_API;
    const scheme = url.protocol === 'http:' ? 'http' : 'https';
    const overridePath = table.override_path === true;
    let prefix = url.pathname === '/' ? '' : path.posix.normalize(url.pathname).replace(/\/+$/, '');
    if (!overridePath && !prefix.endsWith('/v2')) prefix += '/v2';
    ep = {
      registry,
      scheme,
      host,
      baseUrl: `${scheme}://${host}`,
      pathPrefix: prefix,
      capabilities: new Set(ALL_CAPABILITIES),
      tls: { skipVerify: false, caFiles: [], clientCertificates: [] },
      headers: {},
      mirror,
    };
  }

  if (table.override_path !== undefined && typeof table.override_path !== 'boolean') {
    throw fail(`override_path in ${where} must be true or false`);
  }
  if (table.capabilities !== undefined) {
    const caps = stringList(table.capabilities, `capabilities in ${where}`, fail);
    // An empty list falls back to all capabilities, as in containerd.
    if (caps.length > 0) {
      const set = new Set<Capability>();
      for (const c of caps) {
        const lc = c.toLowerCase();
        if (!(ALL_CAPABILITIES as readonly string[]).includes(lc)) {
          throw fail(`unknown capability "${c}" in ${where} (known: pull, resolve, push)`);
        }
        set.add(lc as Capability);
      }
      ep.capabilities = set;
    }
  }
  if (table.skip_verify !== undefined) {
    if (typeof table.skip_verify !== 'boolean') throw fail(`skip_verify in ${where} must be true or false`);
    ep.tls.skipVerify = table.skip_verify;
  }
  if (table.ca !== undefined) {
    ep.tls.caFiles = stringList(table.ca, `ca in ${where}`, fail).map((p) => absolute(p, baseDir));
  }
  if (table.client !== undefined) {
    const c = table.client;
    const pairs: ClientCertificate[] = [];
    const items = Array.isArray(c) ? c : [c];
    for (const item of items) {
      if (typeof item === 'string') {
        pairs.push({ certFile: absolute(item, baseDir) });
      } else if (Array.isArray(item) && item.length === 2 && item.every((v) => typeof v === 'string')) {
        const [cert, key] = item as string[];
        pairs.push(key === '' ? { certFile: absolute(cert, baseDir) } : { certFile: absolute(cert, baseDir), keyFile: absolute(key, baseDir) });
      } else {
        throw fail(`client in ${where} must be a path, a list of paths, or a list of [cert, key] pairs`);
      }
    }
    ep.tls.clientCertificates = pairs;
  }
  if (table.header !== undefined) {
    const h = table.header;
    if (typeof h !== 'object' || h === null || Array.isArray(h)) {
      throw fail(`header in ${where} must be a table of name = value or name = [values]`);
    }
    for (const [name, value] of Object.entries(h as Record<string, unknown>)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw fail(`header name "${name}" in ${where} is not a valid HTTP header name`);
      const values = stringList(value, `header "${name}" in ${where}`, fail);
      if (values.some((v) => /[\r\n]/.test(v))) throw fail(`header "${name}" in ${where} contains a line break`);
      ep.headers[name] = values;
    }
  }
  return ep;
}

/**
 * Parses one hosts.toml. Mirrors come first, in file order, then the
 * registry itself, whose TLS and capability keys are the top-level ones.
 */
export function parseHostsToml(text: string, opts: { registry: string; baseDir: string; source?: string }): HostsConfig {
  const source = opts.source ?? path.join(opts.baseDir, 'hosts.toml');
  const fail = (reason: string) => configError(source, opts.registry, reason);
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw fail(`not valid TOML: ${(err as Error).message.split('\n')[0]}`);
  }
  const warnings: string[] = [];
  for (const key of Object.keys(doc)) {
    if (key !== 'server' && key !== 'host' && !KNOWN_KEYS.has(key)) {
      warnings.push(`${source}: unknown key "${key}" ignored`);
    }
  }

  const endpoints: RegistryEndpoint[] = [];
  const hosts = doc.host;
  if (hosts !== undefined) {
    if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts)) {
      throw fail('"host" must be a table of [host."<url>"] entries');
    }
    // smol-toml keeps tables in file order (URL keys are never integer-like), which is the mirror order.
    for (const [url, table] of Object.entries(hosts as Record<string, unknown>)) {
      if (typeof table !== 'object' || table === null || Array.isArray(table)) {
        throw fail(`[host."${url}"] must be a table`);
      }
      for (const key of Object.keys(table)) {
        if (!KNOWN_KEYS.has(key)) warnings.push(`${source}: unknown key "${key}" in [host."${url}"] ignored`);
      }
      if (url === '') throw fail('a [host.""] entry has an empty URL');
      const ep = buildEndpoint(opts.registry, url, table as HostTable, true, opts.baseDir, fail);
      ep.source = source;
      endpoints.push(ep);
    }
  }

  const server = doc.server ?? '';
  if (typeof server !== 'string') throw fail('server must be a string URL');
  const upstream = buildEndpoint(opts.registry, server, doc as HostTable, false, opts.baseDir, fail);
  upstream.source = source;
  endpoints.push(upstream);
  return { endpoints, warnings };
}

/**
 * A host directory with no hosts.toml is read the Docker way (certs.d):
 * *.crt are CAs, *.cert with a matching *.key are client certificates.
 */
async function loadCertDir(dir: string, registry: string): Promise<HostsConfig> {
  const entries = await fsp.readdir(dir);
  const ep = defaultUpstream(registry);
  ep.source = dir;
  const warnings: string[] = [];
  for (const name of entries.sort()) {
    const full = path.join(dir, name);
    if (name.endsWith('.crt')) {
      ep.tls.caFiles.push(full);
    } else if (name.endsWith('.cert')) {
      const key = name.slice(0, -'.cert'.length) + '.key';
      if (entries.includes(key)) ep.tls.clientCertificates.push({ certFile: full, keyFile: path.join(dir, key) });
      else warnings.push(`${full}: client certificate has no matching ${key}; ignored`);
    }
  }
  return { endpoints: [ep], warnings };
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw err;
  }
}

/**
 * Endpoints to try for a registry, in order. Read on every call; the
 * registry client calls it once per pull, like containerd, so edits under
 * the config dir apply to the next pull.
 */
export async function loadHostsConfig(configDir: string | undefined, registry: string): Promise<HostsConfig> {
  if (registry === '' || registry.includes('/') || registry.includes('\\') || registry.startsWith('.')) {
    throw new InvalidArgumentError(`registry host ${quote(registry, 256)} cannot name a host configuration directory`);
  }
  if (!configDir) return { endpoints: [defaultUpstream(registry)], warnings: [] };
  for (const dir of hostDirCandidates(configDir, registry)) {
    try {
      if (!(await isDirectory(dir))) continue;
      const file = path.join(dir, 'hosts.toml');
      let text: string;
      try {
        text = await fsp.readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        return await loadCertDir(dir, registry);
      }
      if (text.length === 0) return await loadCertDir(dir, registry);
      return parseHostsToml(text, { registry, baseDir: dir, source: file });
    } catch (err) {
      if (err instanceof FailedPreconditionError) throw err;
      throw new FailedPreconditionError(
        `cannot read registry host configuration in ${dir} (for ${registry}): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  return { endpoints: [defaultUpstream(registry)], warnings: [] };
}

export async function loadEndpoints(configDir: string | undefined, registry: string): Promise<RegistryEndpoint[]> {
  return (await loadHostsConfig(configDir, registry)).endpoints;
}
