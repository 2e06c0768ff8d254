import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { InvalidArgumentError } from '../errors';
import { Protocol, type DNSConfig, type PodSandboxConfig, type PortMapping } from '../gen/runtime/v1/api';
import { quote } from '../util/bounds';

/**
 * What a pod's config means, checked before anything is made: the values
 * the adapter writes into files (resolv.conf, hostname) or hands to CNI and
 * runc. Sizes and counts are bounded earlier for every request
 * (util/bounds.ts); here is what a well-sized value may contain.
 */

// Whitespace separates words in resolv.conf and a newline starts a new directive.
const WORD = /^[^\s\p{Cc}]+$/u;

/** A domain name's limit (RFC 1035); glibc's resolver ignores longer search entries. */
const MAX_SEARCH_CHARS = 253;
/** The `search` line as a whole: glibc before 2.26 kept 6 domains in 256 characters; later ones have no limit. */
const MAX_SEARCH_LINE_CHARS = 2048;
const MAX_OPTION_CHARS = 256;

function fail(field: string, message: string): never {
  throw new InvalidArgumentError(`${field}: ${message}`);
}

export function validateDnsConfig(dns: DNSConfig, field = 'config.dns_config'): void {
  dns.servers.forEach((s, i) => {
    // resolv.conf takes addresses, not names; an IPv6 one may carry a zone (fe80::1%eth0).
    if (net.isIP(s.split('%')[0] ?? '') === 0 || !WORD.test(s)) fail(`${field}.servers[${i}]`, `${quote(s)} is not an IP address`);
  });
  let line = 'search'.length;
  dns.searches.forEach((s, i) => {
    const f = `${field}.searches[${i}]`;
    if (!WORD.test(s)) fail(f, `${quote(s)} must be one word without whitespace or control characters`);
    if (s.length > MAX_SEARCH_CHARS) fail(f, `is ${s.length} characters; a domain has at most ${MAX_SEARCH_CHARS}`);
    line += 1 + s.length;
  });
  if (line > MAX_SEARCH_LINE_CHARS) fail(`${field}.searches`, `make a search line of ${line} characters; at most ${MAX_SEARCH_LINE_CHARS} are accepted`);
  dns.options.forEach((o, i) => {
    const f = `${field}.options[${i}]`;
    if (!WORD.test(o)) fail(f, `${quote(o)} must be one word without whitespace or control characters`);
    if (o.length > MAX_OPTION_CHARS) fail(f, `is ${o.length} characters; at most ${MAX_OPTION_CHARS} are accepted`);
  });
}

/** Linux's HOST_NAME_MAX; Kubernetes allows 63. */
const MAX_HOSTNAME_CHARS = 64;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

export function validateHostname(hostname: string, field = 'config.hostname'): void {
  if (hostname === '') return;
  if (hostname.length > MAX_HOSTNAME_CHARS) fail(field, `is ${hostname.length} characters; Linux allows ${MAX_HOSTNAME_CHARS}`);
  if (!HOSTNAME.test(hostname)) fail(field, `${quote(hostname)} is not a host name (letters, digits, "-", "." and "_")`);
}

const PROTOCOLS = new Set<number>([Protocol.TCP, Protocol.UDP, Protocol.SCTP]);

export function validatePortMappings(mappings: PortMapping[], field = 'config.port_mappings'): void {
  mappings.forEach((p, i) => {
    const f = `${field}[${i}]`;
    if (!PROTOCOLS.has(p.protocol)) fail(`${f}.protocol`, `${p.protocol} is not TCP, UDP or SCTP`);
    if (p.hostPort < 0 || p.hostPort > 65535) fail(`${f}.host_port`, `${p.hostPort} is not a port (1-65535, or 0 for none)`);
    if (p.containerPort < 0 || p.containerPort > 65535) fail(`${f}.container_port`, `${p.containerPort} is not a port (1-65535, or 0 for unset)`);
    if (p.hostPort > 0 && p.containerPort === 0) fail(`${f}.container_port`, `is needed to publish host port ${p.hostPort}`);
    if (p.hostIp !== '' && net.isIP(p.hostIp) === 0) fail(`${f}.host_ip`, `${quote(p.hostIp)} is not an IP address`);
  });
}

/** An absolute host path without control characters or "." / ".." steps (it is not cleaned, so it must be clean). */
export function validateHostDirectory(dir: string, field: string): void {
  if (dir === '') return;
  if (!path.isAbsolute(dir)) fail(field, `${quote(dir, 256)} must be an absolute path`);
  if (/\p{Cc}/u.test(dir)) fail(field, `${quote(dir, 256)} must not contain control characters`);
  if (dir.split('/').some((part) => part === '..' || part === '.')) fail(field, `${quote(dir, 256)} must not contain "." or ".." steps`);
}

/** The pod's config, after the required metadata was checked. */
export function validatePodSandboxConfig(config: PodSandboxConfig): void {
  validateHostname(config.hostname);
  if (config.dnsConfig) validateDnsConfig(config.dnsConfig);
  validatePortMappings(config.portMappings);
  validateHostDirectory(config.logDirectory, 'config.log_directory');
  // cgroup_parent is checked where it becomes a path (oci/resources.ts cgroupsPath), for containers too.
}

/** Directories a pod's logs must never be written into (the log files are created as root). */
const SYSTEM_DIRECTORIES = new Set(['/', '/etc', '/usr', '/bin', '/sbin', '/boot', '/proc', '/sys', '/dev', '/run']);

/** /lib64 and its kind are symlinks into /usr on merged-/usr systems: both spellings count. */
function isSystemDirectory(p: string): boolean {
  const d = path.normalize(p).replace(/(.)\/+$/, '$1');
  return SYSTEM_DIRECTORIES.has(d) || /^(\/usr)?\/(lib[^/]*|bin|sbin)$/.test(d);
}

/** The path with symlinks resolved as far as it exists, the rest appended as written. */
async function resolveExisting(p: string): Promise<string> {
  const missing: string[] = [];
  for (let at = p; ; at = path.dirname(at)) {
    try {
      return path.join(await fs.realpath(at), ...missing.reverse());
    } catch {
      if (at === '/') return p;
      missing.push(path.basename(at));
    }
  }
}

/**
 * The pod's log directory as it will really be, after symlinks: not a system
 * directory itself (/, /etc, /usr, /lib*, ...), and inside `root`
 * (logging.podLogRoot) when the operator set one.
 */
export async function validateLogDirectory(dir: string, root: string, field: string): Promise<void> {
  if (dir === '') return;
  const resolved = await resolveExisting(dir);
  const shown = resolved === dir ? '' : ` (${quote(resolved, 256)} after symlinks)`;
  if ([dir, resolved].some(isSystemDirectory)) {
    fail(field, `${quote(dir, 256)}${shown} is a system directory; pod logs belong in a directory of their own, such as /var/log/pods/<pod>`);
  }
  if (root) {
    const within = await resolveExisting(root);
    if (resolved !== within && !resolved.startsWith(within.endsWith('/') ? within : `${within}/`)) {
      fail(field, `${quote(dir, 256)}${shown} is outside logging.podLogRoot ${quote(root, 256)}`);
    }
  }
}
