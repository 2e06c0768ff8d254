import { InvalidArgumentError } from '../errors';

/**
 * Bounds on what a request may carry, checked once per request before any
 * work (design principle 6): no request can stall the event loop, outgrow a
 * containerd message (16 MiB) or make a list answer outgrow the kubelet's
 * receive limit, and no unbounded input is echoed into an error or a log
 * line. The limits are generous for real pods; README "Request limits"
 * lists them.
 *
 * This module knows field names, not CRI message types: it walks any decoded
 * request, so every RPC is covered by the one call in the dispatch wrapper,
 * whatever file handles it.
 */

/** How much of a caller's string an error or a log line may quote. */
export const QUOTE_MAX_CHARS = 96;

/**
 * A caller's string for an error message or a log field: JSON-quoted (so
 * control characters cannot forge lines), cut to `max` characters with the
 * full length noted.
 */
export function quote(value: unknown, max = QUOTE_MAX_CHARS): string {
  // Anything else (a value read from a JSON file) is shown as its JSON text, cut the same way.
  if (typeof value !== 'string') return clip(String(JSON.stringify(value)), max);
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`;
}

/** The same cut, unquoted, for structured log fields (the logger escapes them itself). */
export function clip(value: string, max = QUOTE_MAX_CHARS): string {
  return value.length <= max ? value : `${value.slice(0, max)}… (${value.length} characters)`;
}

/** IDs this adapter hands out are 64 hex digits; crictl users may type a unique prefix. */
export const MAX_ID_CHARS = 128;
const ID_SHAPE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Pod and container names, namespaces and UIDs (Kubernetes allows 253 for a pod name). */
export const MAX_NAME_CHARS = 253;
// No whitespace or control characters: names go into containerd labels, file names and log lines.
const NAME_SHAPE = /^[^\s\p{Cc}]+$/u;

/** Kubernetes: a label or annotation key is a DNS-subdomain prefix (253), "/" and a name (63). */
export const MAX_KEY_CHARS = 253 + 1 + 63;

export interface MapLimit {
  entries: number;
  valueChars: number;
  /** Sum of keys and values. */
  totalBytes: number;
}

export interface ListLimit {
  entries: number;
  /** Each element's length when the elements are strings. */
  itemChars?: number;
  /** Sum of the elements' string lengths, nested fields included. */
  totalBytes?: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** The kernel's limit on one argv/envp string (MAX_ARG_STRLEN, 32 pages). */
const MAX_ARG_STRLEN = 128 * KiB;

/**
 * Maps by field name (ts-proto's camelCase). Labels follow containerd (a
 * label's key and value within 4 KiB) and the API server's shape; annotations
 * the API server's 256 KiB per object, doubled for what the kubelet adds.
 */
export const MAP_LIMITS: Readonly<Record<string, MapLimit>> = {
  labels: { entries: 1024, valueChars: 4 * KiB - MAX_KEY_CHARS, totalBytes: 64 * KiB },
  labelSelector: { entries: 1024, valueChars: 4 * KiB - MAX_KEY_CHARS, totalBytes: 64 * KiB },
  annotations: { entries: 4096, valueChars: 512 * KiB, totalBytes: 512 * KiB },
  sysctls: { entries: 1024, valueChars: 4 * KiB, totalBytes: 256 * KiB },
  unified: { entries: 1024, valueChars: 4 * KiB, totalBytes: 256 * KiB },
  options: { entries: 256, valueChars: 4 * KiB, totalBytes: 64 * KiB },
};
const DEFAULT_MAP_LIMIT: MapLimit = { entries: 1024, valueChars: 4 * KiB, totalBytes: 256 * KiB };

/**
 * Repeated fields by name. A process's command, args and env together stay
 * within 4 MiB (twice Linux's default ARG_MAX): the spec and the stored CRI
 * config both carry them in one containerd request.
 */
export const LIST_LIMITS: Readonly<Record<string, ListLimit>> = {
  command: { entries: 8 * KiB, itemChars: MAX_ARG_STRLEN, totalBytes: 4 * MiB },
  args: { entries: 8 * KiB, itemChars: MAX_ARG_STRLEN, totalBytes: 4 * MiB },
  cmd: { entries: 8 * KiB, itemChars: MAX_ARG_STRLEN, totalBytes: 4 * MiB },
  envs: { entries: 8 * KiB, totalBytes: 4 * MiB },
  mounts: { entries: 1024, totalBytes: 4 * MiB },
  devices: { entries: 1024, totalBytes: 1 * MiB },
  CDIDevices: { entries: 1024, totalBytes: 1 * MiB },
  maskedPaths: { entries: 1024, totalBytes: 1 * MiB },
  readonlyPaths: { entries: 1024, totalBytes: 1 * MiB },
  portMappings: { entries: 4096 },
  supplementalGroups: { entries: 65536 },
  addCapabilities: { entries: 128, itemChars: 64 },
  dropCapabilities: { entries: 128, itemChars: 64 },
  addAmbientCapabilities: { entries: 128, itemChars: 64 },
  hugepageLimits: { entries: 64 },
  uidMappings: { entries: 340 },
  gidMappings: { entries: 340 },
  uids: { entries: 340 },
  gids: { entries: 340 },
  servers: { entries: 32 },
  searches: { entries: 32 },
  // DNSConfig.options and Mount's mount options.
  options: { entries: 256 },
  mountOptions: { entries: 256 },
};
const DEFAULT_LIST_LIMIT: ListLimit = { entries: 1024 };

/** Strings by field name; every other string is bounded by PATH_MAX. */
export const STRING_LIMITS: Readonly<Record<string, number>> = {
  // An env entry's value (KeyValue.value): one envp string.
  value: MAX_ARG_STRLEN,
  // Registry credentials: identity and registry tokens are JWTs of a few KiB.
  password: 64 * KiB,
  auth: 64 * KiB,
  identityToken: 64 * KiB,
  registryToken: 64 * KiB,
};
const DEFAULT_STRING_CHARS = 4 * KiB;

/** Fields that hold an ID of a pod, a container or an image's record. */
const ID_FIELDS = new Set(['podSandboxId', 'containerId', 'targetId']);
/** Parents whose `id` field is an ID filter (ListContainers, ListPodSandbox, the stats lists). */
const ID_PARENTS = new Set(['filter']);

/** The whole request's strings together: far below the 16 MiB gRPC limit, so derived messages fit too. */
export const MAX_REQUEST_STRING_BYTES = 8 * MiB;

export class RequestTooLargeError extends InvalidArgumentError {}

/** snake_case path of a field, as the CRI proto spells it (`config.linux.security_context`). */
function snake(path: readonly string[]): string {
  return path
    .map((p) => (p.startsWith('[') || p === 'CDIDevices' ? p.replace('CDIDevices', 'CDI_devices') : p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)))
    .join('.')
    .replace(/\.\[/g, '[');
}

function fail(path: readonly string[], message: string): never {
  throw new InvalidArgumentError(`${snake(path)}: ${message}`);
}

/** Refuses an ID that no object of this adapter can have, before anyone looks it up. */
export function checkId(value: string, field: string): void {
  if (value === '') return;
  if (value.length > MAX_ID_CHARS) throw new InvalidArgumentError(`${field}: ${quote(value, 16)} is longer than an ID (${MAX_ID_CHARS} characters at most)`);
  if (!ID_SHAPE.test(value)) throw new InvalidArgumentError(`${field}: ${quote(value)} is not an ID (letters, digits, "_", "." and "-")`);
}

export function checkName(value: string, field: string): void {
  if (value === '') return;
  if (value.length > MAX_NAME_CHARS) throw new InvalidArgumentError(`${field}: ${quote(value, 16)} is longer than ${MAX_NAME_CHARS} characters`);
  if (!NAME_SHAPE.test(value)) throw new InvalidArgumentError(`${field}: ${quote(value)} must not contain whitespace or control characters`);
}

function own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

interface Walk {
  total: number;
}

function walkString(value: string, key: string, parent: string, path: string[], w: Walk, max: number): number {
  if (ID_FIELDS.has(key) || (key === 'id' && ID_PARENTS.has(parent))) checkId(value, snake(path));
  else if (value.length > max) fail(path, `is ${value.length} characters long; at most ${max} are accepted`);
  else if (parent === 'metadata' && (key === 'name' || key === 'namespace' || key === 'uid')) checkName(value, snake(path));
  const bytes = value.length;
  w.total += bytes;
  if (w.total > MAX_REQUEST_STRING_BYTES) throw new RequestTooLargeError(`the request carries more than ${MAX_REQUEST_STRING_BYTES / MiB} MiB of text`);
  return bytes;
}

/** A bytes field (an env entry's value) is bounded like a string of its field. */
function walkBytes(value: Uint8Array, key: string, path: string[], w: Walk): number {
  const max = own(STRING_LIMITS, key) ?? DEFAULT_STRING_CHARS;
  if (value.length > max) fail(path, `is ${value.length} bytes long; at most ${max} are accepted`);
  w.total += value.length;
  if (w.total > MAX_REQUEST_STRING_BYTES) throw new RequestTooLargeError(`the request carries more than ${MAX_REQUEST_STRING_BYTES / MiB} MiB of text`);
  return value.length;
}

/** Returns the string bytes under `value`. */
function walk(value: unknown, key: string, parent: string, path: string[], w: Walk): number {
  if (typeof value === 'string') return walkString(value, key, parent, path, w, own(STRING_LIMITS, key) ?? DEFAULT_STRING_CHARS);
  if (value instanceof Uint8Array) return walkBytes(value, key, path, w);
  if (typeof value !== 'object' || value === null) return 0;
  if (Array.isArray(value)) {
    const limit = own(LIST_LIMITS, key) ?? DEFAULT_LIST_LIMIT;
    if (value.length > limit.entries) fail(path, `has ${value.length} entries; at most ${limit.entries} are accepted`);
    let bytes = 0;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      path.push(`[${i}]`);
      bytes +=
        typeof item === 'string'
          ? walkString(item, key, parent, path, w, limit.itemChars ?? own(STRING_LIMITS, key) ?? DEFAULT_STRING_CHARS)
          : walk(item, key, parent, path, w);
      path.pop();
      if (limit.totalBytes !== undefined && bytes > limit.totalBytes) {
        fail(path, `holds more than ${limit.totalBytes / KiB} KiB, the most accepted`);
      }
    }
    return bytes;
  }
  if (value instanceof Map) return 0;
  const obj = value as Record<string, unknown>;
  if (Object.hasOwn(MAP_LIMITS, key) || isStringMap(key)) return walkMap(obj, key, path, w);
  let bytes = 0;
  for (const k of Object.keys(obj)) {
    path.push(k);
    bytes += walk(obj[k], k, key, path, w);
    path.pop();
  }
  return bytes;
}

// ts-proto decodes map<string,string> fields into plain objects; the CRI's other maps (responses' `info`).
const STRING_MAP_FIELDS = new Set(['info']);
function isStringMap(key: string): boolean {
  return STRING_MAP_FIELDS.has(key);
}

function walkMap(obj: Record<string, unknown>, key: string, path: string[], w: Walk): number {
  const limit = own(MAP_LIMITS, key) ?? DEFAULT_MAP_LIMIT;
  const keys = Object.keys(obj);
  if (keys.length > limit.entries) fail(path, `has ${keys.length} entries; at most ${limit.entries} are accepted`);
  let bytes = 0;
  for (const k of keys) {
    const v = obj[k];
    path.push(`[${quote(k, 32)}]`);
    if (k.length > MAX_KEY_CHARS) fail(path, `key is ${k.length} characters long; at most ${MAX_KEY_CHARS} are accepted`);
    if (typeof v === 'string' && v.length > limit.valueChars) fail(path, `value is ${v.length} characters long; at most ${limit.valueChars} are accepted`);
    path.pop();
    bytes += k.length + (typeof v === 'string' ? v.length : 0);
    if (bytes > limit.totalBytes) fail(path, `holds more than ${limit.totalBytes / KiB} KiB of keys and values, the most accepted`);
  }
  w.total += bytes;
  if (w.total > MAX_REQUEST_STRING_BYTES) throw new RequestTooLargeError(`the request carries more than ${MAX_REQUEST_STRING_BYTES / MiB} MiB of text`);
  return bytes;
}

/**
 * Checks a decoded request against the bounds above; throws
 * InvalidArgumentError naming the field (snake_case) and the limit. Cost is
 * linear in the request and stops at the first excess, so an oversized
 * request is refused after looking at no more than its limit.
 */
export function checkRequestBounds(request: unknown): void {
  walk(request, '', '', [], { total: 0 });
}
