/**
 * CDI (Container Device Interface): vendor spec files describe devices by
 * fully-qualified name `vendor.com/class=name`, each with edits to make to a
 * container's OCI spec (device nodes, env, mounts, hooks, extra groups).
 * The spec file format is tags.cncf.io/container-device-interface's
 * SPEC.md; this module parses it, picks the devices a container asked for
 * and applies their edits. Reading the files is the caller's I/O.
 */
import type { ContainerConfig } from '../gen/runtime/v1/api';
import { addDevice, devicePermissions, DeviceLookup, HostDevice } from './devices';
import { quoteBounded } from '../util/quote';
import { sortMounts } from './mounts';
import type { OciDevice, OciHook, OciHooks, OciMount, SpecOpt } from './oci-types';
import { mergeEnv } from './process';
import { cleanAbsolutePath, invalidField } from './validate';

export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: 'c' | 'b' | 'u' | 'p';
  major?: number;
  minor?: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}

export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type?: string;
  options?: string[];
}

export interface CdiHook {
  hookName: string;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface CdiContainerEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
}

export interface CdiDevice {
  name: string;
  containerEdits: CdiContainerEdits;
}

export interface CdiSpec {
  cdiVersion: string;
  /** `vendor.com/class` */
  kind: string;
  devices: CdiDevice[];
  containerEdits?: CdiContainerEdits;
  /** The file it came from. */
  source: string;
}

/** One requested device, found: the spec it belongs to and its own entry. */
export interface CdiResolved {
  spec: CdiSpec;
  device: CdiDevice;
}

export type CdiLookup = (qualifiedName: string) => CdiResolved | undefined;

/** Prefix of pod/container annotations that request CDI devices (comma-separated names). */
export const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';

/** Devices one container may ask for; far above any real request. */
export const MAX_CDI_DEVICES = 64;
/** A qualified name longer than this is not one (253 vendor + 63 class + 63 name, rounded). */
const MAX_NAME = 400;

// SPEC.md: the vendor is a DNS subdomain, the class and device names alphanumerics with - _ . (device: also :).
const VENDOR = /^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/;
const CLASS = /^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$/;
const DEVICE = /^[a-zA-Z0-9]([a-zA-Z0-9_.:-]*[a-zA-Z0-9])?$/;
const HOOK_NAMES = new Set(['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);

function isKind(kind: string): boolean {
  const slash = kind.indexOf('/');
  if (slash <= 0 || kind.indexOf('/', slash + 1) >= 0) return false;
  const vendor = kind.slice(0, slash);
  const cls = kind.slice(slash + 1);
  return vendor.length <= 253 && cls.length <= 63 && VENDOR.test(vendor) && CLASS.test(cls);
}

/** Splits `vendor.com/class=name`; undefined when it is not a fully-qualified CDI name. */
export function parseQualifiedName(name: string): { kind: string; device: string } | undefined {
  if (name.length > MAX_NAME) return undefined;
  const eq = name.indexOf('=');
  if (eq < 0) return undefined;
  const kind = name.slice(0, eq);
  const device = name.slice(eq + 1);
  return isKind(kind) && DEVICE.test(device) ? { kind, device } : undefined;
}

function strings(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new Error(`${what} must be a list of strings`);
  return v as string[];
}

function optNumber(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${what} must be a non-negative integer`);
  return v;
}

function absolute(v: unknown, what: string): string {
  if (typeof v !== 'string' || !v.startsWith('/')) throw new Error(`${what} must be an absolute path`);
  return v;
}

function parseEdits(raw: unknown, where: string): CdiContainerEdits {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where} must be an object`);
  const r = raw as Record<string, unknown>;
  const edits: CdiContainerEdits = {};
  const env = strings(r.env, `${where}.env`);
  if (env) {
    env.forEach((e, i) => {
      if (e.indexOf('=') <= 0) throw new Error(`${where}.env[${i}] is not NAME=value`);
    });
    edits.env = env;
  }
  if (r.deviceNodes !== undefined && r.deviceNodes !== null) {
    if (!Array.isArray(r.deviceNodes)) throw new Error(`${where}.deviceNodes must be a list`);
    edits.deviceNodes = r.deviceNodes.map((d: unknown, i) => {
      const w = `${where}.deviceNodes[${i}]`;
      if (typeof d !== 'object' || d === null) throw new Error(`${w} must be an object`);
      const n = d as Record<string, unknown>;
      const node: CdiDeviceNode = { path: absolute(n.path, `${w}.path`) };
      if (n.hostPath !== undefined && n.hostPath !== '') node.hostPath = absolute(n.hostPath, `${w}.hostPath`);
      if (n.type !== undefined && n.type !== '') {
        if (n.type !== 'c' && n.type !== 'b' && n.type !== 'u' && n.type !== 'p') throw new Error(`${w}.type must be c, b, u or p`);
        node.type = n.type;
      }
      for (const k of ['major', 'minor', 'fileMode', 'uid', 'gid'] as const) {
        const v = optNumber(n[k], `${w}.${k}`);
        if (v !== undefined) node[k] = v;
      }
      if (n.permissions !== undefined && n.permissions !== '') {
        if (typeof n.permissions !== 'string' || !/^[rwm]+$/.test(n.permissions)) throw new Error(`${w}.permissions must be any of r, w, m`);
        node.permissions = n.permissions;
      }
      return node;
    });
  }
  if (r.mounts !== undefined && r.mounts !== null) {
    if (!Array.isArray(r.mounts)) throw new Error(`${where}.mounts must be a list`);
    edits.mounts = r.mounts.map((m: unknown, i) => {
      const w = `${where}.mounts[${i}]`;
      if (typeof m !== 'object' || m === null) throw new Error(`${w} must be an object`);
      const x = m as Record<string, unknown>;
      if (typeof x.hostPath !== 'string' || x.hostPath === '') throw new Error(`${w}.hostPath is required`);
      const mount: CdiMount = { hostPath: x.hostPath, containerPath: absolute(x.containerPath, `${w}.containerPath`) };
      if (x.type !== undefined && x.type !== '') {
        if (typeof x.type !== 'string') throw new Error(`${w}.type must be a string`);
        mount.type = x.type;
      }
      const options = strings(x.options, `${w}.options`);
      if (options) mount.options = options;
      return mount;
    });
  }
  if (r.hooks !== undefined && r.hooks !== null) {
    if (!Array.isArray(r.hooks)) throw new Error(`${where}.hooks must be a list`);
    edits.hooks = r.hooks.map((h: unknown, i) => {
      const w = `${where}.hooks[${i}]`;
      if (typeof h !== 'object' || h === null) throw new Error(`${w} must be an object`);
      const x = h as Record<string, unknown>;
      if (typeof x.hookName !== 'string' || !HOOK_NAMES.has(x.hookName)) {
        throw new Error(`${w}.hookName must be one of ${[...HOOK_NAMES].join(', ')}`);
      }
      const hook: CdiHook = { hookName: x.hookName, path: absolute(x.path, `${w}.path`) };
      const args = strings(x.args, `${w}.args`);
      if (args) hook.args = args;
      const env = strings(x.env, `${w}.env`);
      if (env) hook.env = env;
      const timeout = optNumber(x.timeout, `${w}.timeout`);
      if (timeout !== undefined) {
        if (timeout === 0) throw new Error(`${w}.timeout must be greater than zero`);
        hook.timeout = timeout;
      }
      return hook;
    });
  }
  if (r.additionalGIDs !== undefined && r.additionalGIDs !== null) {
    if (!Array.isArray(r.additionalGIDs)) throw new Error(`${where}.additionalGIDs must be a list`);
    edits.additionalGids = r.additionalGIDs.map((g: unknown, i) => optNumber(g, `${where}.additionalGIDs[${i}]`)!);
  }
  return edits;
}

/** Validates one parsed spec file (JSON or YAML, already decoded). Throws Error saying what is wrong. */
export function parseCdiSpec(raw: unknown, source: string): CdiSpec {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not an object');
  const r = raw as Record<string, unknown>;
  if (typeof r.cdiVersion !== 'string' || !/^\d+\.\d+\.\d+$/.test(r.cdiVersion)) throw new Error('cdiVersion must be a semantic version');
  if (typeof r.kind !== 'string' || !isKind(r.kind)) throw new Error('kind must be vendor.com/class');
  if (!Array.isArray(r.devices) || r.devices.length === 0) throw new Error('devices must list at least one device');
  const seen = new Set<string>();
  const devices = r.devices.map((d: unknown, i): CdiDevice => {
    if (typeof d !== 'object' || d === null) throw new Error(`devices[${i}] must be an object`);
    const x = d as Record<string, unknown>;
    if (typeof x.name !== 'string' || !DEVICE.test(x.name)) throw new Error(`devices[${i}].name is not a valid device name`);
    if (seen.has(x.name)) throw new Error(`device ${quoteBounded(x.name)} is defined twice`);
    seen.add(x.name);
    return { name: x.name, containerEdits: parseEdits(x.containerEdits, `devices[${i}].containerEdits`) };
  });
  const spec: CdiSpec = { cdiVersion: r.cdiVersion, kind: r.kind, devices, source };
  if (r.containerEdits !== undefined) spec.containerEdits = parseEdits(r.containerEdits, 'containerEdits');
  return spec;
}

/**
 * The CDI devices a container asks for: CDI_devices first (the kubelet's
 * field since 1.31), then the names in `cdi.k8s.io/*` annotations (the older
 * channel device plugins use), each name once.
 */
export function requestedCdiDevices(config: Pick<ContainerConfig, 'CDIDevices' | 'annotations'>): string[] {
  const names: string[] = [];
  const add = (name: string, field: string) => {
    if (names.includes(name)) return;
    if (names.length >= MAX_CDI_DEVICES) throw invalidField(field, `more than ${MAX_CDI_DEVICES} CDI devices requested`);
    names.push(name);
  };
  config.CDIDevices.forEach((d, i) => {
    const f = `CDI_devices[${i}].name`;
    if (!parseQualifiedName(d.name)) throw invalidField(f, `${quoteBounded(d.name)} is not a fully-qualified CDI device name (vendor.com/class=name)`);
    add(d.name, f);
  });
  for (const key of Object.keys(config.annotations).sort()) {
    if (!key.startsWith(CDI_ANNOTATION_PREFIX)) continue;
    const f = `annotations[${quoteBounded(key, 60)}]`;
    for (const part of config.annotations[key]!.split(',')) {
      const name = part.trim();
      if (name === '') continue;
      if (!parseQualifiedName(name)) throw invalidField(f, `${quoteBounded(name)} is not a fully-qualified CDI device name (vendor.com/class=name)`);
      add(name, f);
    }
  }
  return names;
}

/**
 * Looks every requested name up. The edits come out in the order they
 * apply: for each spec file involved, its spec-wide edits once, then each
 * requested device's own. An unknown name is an error naming it.
 */
export function resolveCdiDevices(names: readonly string[], lookup: CdiLookup): CdiContainerEdits[] {
  const found: CdiResolved[] = [];
  for (const name of names) {
    const r = lookup(name);
    if (!r) throw invalidField('CDI_devices', `CDI device ${quoteBounded(name)} is not defined by any CDI spec file on this node`);
    found.push(r);
  }
  const edits: CdiContainerEdits[] = [];
  const specsDone = new Set<CdiSpec>();
  for (const { spec, device } of found) {
    if (!specsDone.has(spec)) {
      specsDone.add(spec);
      if (spec.containerEdits) edits.push(spec.containerEdits);
    }
    edits.push(device.containerEdits);
  }
  return edits;
}

function deviceNode(node: CdiDeviceNode, lookup: DeviceLookup | undefined, field: string): OciDevice {
  const path = cleanAbsolutePath(node.path, field);
  let type = node.type;
  let major = node.major;
  let minor = node.minor;
  let host: HostDevice | undefined;
  // Type and numbers left out mean "as the host node is" (SPEC.md: the runtime stats hostPath, else path).
  if (type === undefined || ((type === 'c' || type === 'b' || type === 'u') && (major === undefined || minor === undefined))) {
    const hostPath = node.hostPath ?? node.path;
    if (!lookup) throw invalidField(field, 'needs the host device, and no device lookup was given');
    let found: HostDevice | HostDevice[];
    try {
      found = lookup(hostPath);
    } catch (err) {
      throw invalidField(field, `cannot use ${quoteBounded(hostPath)} as a device: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (Array.isArray(found)) throw invalidField(field, `${quoteBounded(hostPath)} is a directory, not a device node`);
    host = found;
    type ??= host.type;
    major ??= host.major;
    minor ??= host.minor;
  }
  const dev: OciDevice = { path, type: type === 'u' ? 'c' : type, major: major ?? 0, minor: minor ?? 0 };
  const fileMode = node.fileMode ?? host?.fileMode;
  if (fileMode !== undefined) dev.fileMode = fileMode;
  const uid = node.uid ?? host?.uid;
  const gid = node.gid ?? host?.gid;
  if (uid !== undefined) dev.uid = uid;
  if (gid !== undefined) dev.gid = gid;
  return dev;
}

function ociHook(h: CdiHook): OciHook {
  const hook: OciHook = { path: h.path };
  if (h.args) hook.args = [...h.args];
  if (h.env) hook.env = [...h.env];
  if (h.timeout !== undefined) hook.timeout = h.timeout;
  return hook;
}

/**
 * Applies resolved CDI edits, after everything the CRI config asked for:
 * env entries override same-named ones, device nodes and mounts replace any
 * at the same container path, hooks are appended to their stage, extra
 * groups join the process's.
 */
export function withCdiEdits(edits: readonly CdiContainerEdits[], lookup: DeviceLookup | undefined): SpecOpt {
  return (spec) => {
    if (edits.length === 0) return;
    const mounts: OciMount[] = [];
    edits.forEach((e, i) => {
      if (e.env?.length) spec.process.env = mergeEnv(spec.process.env ?? [], e.env);
      e.deviceNodes?.forEach((n, j) => {
        const dev = deviceNode(n, lookup, `CDI device edit ${i} deviceNodes[${j}]`);
        if (dev.type === 'p') {
          // A FIFO needs no cgroup rule; keep it out of the allow list.
          const devices = (spec.linux.devices ??= []);
          const at = devices.findIndex((d) => d.path === dev.path);
          if (at >= 0) devices[at] = dev;
          else devices.push(dev);
        } else {
          addDevice(spec, dev, devicePermissions(n.permissions ?? '', `CDI device edit ${i} deviceNodes[${j}].permissions`));
        }
      });
      for (const m of e.mounts ?? []) {
        const destination = cleanAbsolutePath(m.containerPath, 'CDI mount containerPath');
        const at = mounts.findIndex((x) => x.destination === destination);
        if (at >= 0) mounts.splice(at, 1);
        const type = m.type ?? 'bind';
        const options = [...(m.options ?? [])];
        // runc binds only with a bind flag among the options; CDI files often give the type alone.
        if (type === 'bind' && !options.includes('bind') && !options.includes('rbind')) options.unshift('rbind');
        mounts.push({ destination, type, source: m.hostPath, options });
      }
      for (const h of e.hooks ?? []) {
        const hooks: OciHooks = (spec.hooks ??= {});
        (hooks[h.hookName as keyof OciHooks] ??= []).push(ociHook(h));
      }
      if (e.additionalGids?.length) {
        const gids = new Set([...(spec.process.user.additionalGids ?? []), ...e.additionalGids]);
        spec.process.user.additionalGids = [...gids].sort((a, b) => a - b);
      }
    });
    if (mounts.length) {
      const targets = new Set(mounts.map((m) => m.destination));
      spec.mounts = sortMounts([...spec.mounts.filter((m) => !targets.has(cleanAbsolutePath(m.destination, 'mount destination'))), ...mounts]);
    }
  };
}
