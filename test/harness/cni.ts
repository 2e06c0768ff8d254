/**
 * The harness's CNI network: one Linux bridge `cria-br<N>` with a private /24
 * `10.199.<N>.0/24` per harness, host-local IPAM state inside the harness tmp
 * dir, and a conflist (bridge + portmap + loopback) in a conf dir of its own.
 *
 * Pod traffic stays on this machine: no masquerade, no default route in pods,
 * and two FORWARD DROP rules so nothing is routed between the bridge and any
 * other interface even though the bridge plugin turns ip_forward on.
 *
 * The bridge is created here (not lazily by the plugin) so that creating it
 * reserves N atomically against other harnesses; its alias names the owning
 * tmp dir and pid so a later harness can clean up after a crashed one.
 */
import * as fs from 'fs';
import * as path from 'path';
import { pidAlive, runSync, tryRunSync } from './util';

export const CNI_BIN_DIR = '/usr/lib/cni';
export const BRIDGE_PREFIX = 'cria-br';
export const NETWORK_PREFIX = 'cria-net-';
/** Network namespaces named with this prefix are deleted when a harness stops. */
export const NETNS_PREFIX = 'cria-';
const ALIAS_PREFIX = 'cri-adapter-it';
const SUBNET_BASE = '10.199';
const MAX_NETWORKS = 64;

export interface CniNetwork {
  confDir: string;
  binDir: string;
  /** The conflist written to confDir. */
  confPath: string;
  /** CIDR, e.g. 10.199.3.0/24 */
  subnet: string;
  gateway: string;
  bridge: string;
  /** The conflist's "name". */
  networkName: string;
  /** host-local IPAM state. */
  ipamDataDir: string;
  /** netns names of this harness start with this (a subset of NETNS_PREFIX). */
  netnsPrefix: string;
  /** ip_forward as found when the network was set up. */
  ipForwardBefore: string;
}

interface LinkJson {
  ifname: string;
  ifalias?: string;
  master?: string;
}

function links(args: string[] = []): LinkJson[] {
  const out = tryRunSync('ip', ['-j', 'link', 'show', ...args]);
  if (!out) return [];
  try {
    return JSON.parse(out) as LinkJson[];
  } catch {
    return [];
  }
}

function forwardRules(bridge: string): string[][] {
  const comment = `cri-adapter-it ${bridge}`;
  return [
    ['FORWARD', '-i', bridge, '!', '-o', bridge, '-m', 'comment', '--comment', comment, '-j', 'DROP'],
    ['FORWARD', '-o', bridge, '!', '-i', bridge, '-m', 'comment', '--comment', comment, '-j', 'DROP'],
  ];
}

function readIpForward(): string {
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  } catch {
    return '';
  }
}

/** Owner recorded in a bridge alias: "cri-adapter-it <pid> <tmpDir>". */
function parseAlias(alias: string | undefined): { pid: number; dir: string } | undefined {
  if (!alias || !alias.startsWith(ALIAS_PREFIX + ' ')) return undefined;
  const [, pid, ...dir] = alias.split(' ');
  return { pid: Number(pid), dir: dir.join(' ') };
}

/** Subnets/addresses already in use on this machine (any route or address in 10.199.N). */
function subnetInUse(n: number): boolean {
  const prefix = `${SUBNET_BASE}.${n}.`;
  const routes = tryRunSync('ip', ['-4', 'route', 'show', 'table', 'all']) ?? '';
  const addrs = tryRunSync('ip', ['-4', '-o', 'addr', 'show']) ?? '';
  return routes.includes(prefix) || addrs.includes(prefix);
}

/** Remove bridges (and their rules) whose owning harness is gone. */
export function sweepStaleNetworks(): void {
  for (const l of links(['type', 'bridge'])) {
    if (!l.ifname.startsWith(BRIDGE_PREFIX)) continue;
    const owner = parseAlias(l.ifalias);
    if (!owner) continue;
    if (fs.existsSync(owner.dir) && pidAlive(owner.pid)) continue;
    const n = Number(l.ifname.slice(BRIDGE_PREFIX.length));
    removeNetworkResources(l.ifname, `${NETWORK_PREFIX}${n}`);
  }
}

/**
 * ip_forward as it was before the first harness bridge appeared. Kept in a
 * file while any harness bridge exists, so the value survives a crashed
 * harness and the last teardown can put it back.
 */
const IP_FORWARD_FILE = '/run/cri-adapter-it.ip_forward';

function harnessBridges(): string[] {
  return links(['type', 'bridge'])
    .map((l) => l.ifname)
    .filter((n) => n.startsWith(BRIDGE_PREFIX));
}

function rememberIpForward(): string {
  let saved: string | undefined;
  try {
    saved = fs.readFileSync(IP_FORWARD_FILE, 'utf8').trim();
  } catch {
    saved = undefined;
  }
  if (saved === undefined || (saved !== '0' && saved !== '1')) {
    // no file: nobody changed it yet, the current value is the original
    saved = readIpForward();
    try {
      fs.writeFileSync(IP_FORWARD_FILE, saved + '\n');
    } catch {
      // read-only /run: fall back to the in-memory value
    }
  }
  return saved;
}

function restoreIpForward(fallback: string): void {
  if (harnessBridges().length > 0) return; // another harness still needs its network
  let original = fallback;
  try {
    original = fs.readFileSync(IP_FORWARD_FILE, 'utf8').trim() || fallback;
  } catch {
    // no file: use what this harness saw
  }
  if ((original === '0' || original === '1') && readIpForward() !== original) {
    try {
      fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', original);
    } catch {
      // not ours to insist on
    }
  }
  fs.rmSync(IP_FORWARD_FILE, { force: true });
}

export function setupCniNetwork(tmpDir: string): CniNetwork {
  sweepStaleNetworks();
  const ipForwardBefore = rememberIpForward();
  let n = -1;
  for (let i = 0; i < MAX_NETWORKS; i++) {
    const bridge = `${BRIDGE_PREFIX}${i}`;
    if (links().some((l) => l.ifname === bridge)) continue;
    if (subnetInUse(i)) continue;
    // creating the link is the reservation: it fails if another harness got there first
    if (tryRunSync('ip', ['link', 'add', bridge, 'type', 'bridge']) === undefined) continue;
    n = i;
    break;
  }
  if (n < 0) throw new Error(`no free harness bridge/subnet (${BRIDGE_PREFIX}0..${MAX_NETWORKS - 1} all taken)`);
  const bridge = `${BRIDGE_PREFIX}${n}`;
  const networkName = `${NETWORK_PREFIX}${n}`;
  const subnet = `${SUBNET_BASE}.${n}.0/24`;
  const gateway = `${SUBNET_BASE}.${n}.1`;
  try {
    runSync('ip', ['link', 'set', 'dev', bridge, 'alias', `${ALIAS_PREFIX} ${process.pid} ${tmpDir}`]);
    for (const rule of forwardRules(bridge)) runSync('iptables', ['-w', '-I', ...rule]);
  } catch (e) {
    removeNetworkResources(bridge, networkName);
    throw e;
  }
  const confDir = path.join(tmpDir, 'cni', 'net.d');
  const ipamDataDir = path.join(tmpDir, 'cni', 'ipam');
  fs.mkdirSync(confDir, { recursive: true });
  fs.mkdirSync(ipamDataDir, { recursive: true });
  const conflist = {
    cniVersion: '1.0.0',
    name: networkName,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        isDefaultGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet, gateway }]],
          dataDir: ipamDataDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'loopback' },
    ],
  };
  const confPath = path.join(confDir, '10-cri-adapter-test.conflist');
  fs.writeFileSync(confPath, JSON.stringify(conflist, null, 2) + '\n');
  return {
    confDir,
    binDir: CNI_BIN_DIR,
    confPath,
    subnet,
    gateway,
    bridge,
    networkName,
    ipamDataDir,
    netnsPrefix: `${NETNS_PREFIX}${n}-`,
    ipForwardBefore,
  };
}

/** Split one iptables-save rule line into argv (handles "quoted strings" with \" escapes). */
function splitRule(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inQuote) {
      if (c === '\\' && i + 1 < line.length) {
        cur += line[++i];
      } else if (c === '"') {
        inQuote = false;
      } else {
        cur += c;
      }
    } else if (c === '"') {
      inQuote = true;
      has = true;
    } else if (c === ' ') {
      if (has || cur !== '') out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has || cur !== '') out.push(cur);
  return out;
}

/**
 * Remove what CNI's portmap plugin left in the nat table for our network
 * (rules whose comment names it, and the per-container CNI-DN-/CNI-SN- chains
 * they jump to). Shared chains such as CNI-HOSTPORT-DNAT are left alone.
 */
function removePortmapLeftovers(networkName: string): void {
  const save = tryRunSync('iptables-save', ['-t', 'nat']);
  if (!save) return;
  const marker = `name: \\"${networkName}\\"`;
  const chains = new Set<string>();
  for (const line of save.split('\n')) {
    if (!line.startsWith('-A ') || !line.includes(marker)) continue;
    const argv = splitRule(line);
    const j = argv.indexOf('-j');
    if (j >= 0 && /^CNI-(DN|SN)-/.test(argv[j + 1] ?? '')) chains.add(argv[j + 1]);
    tryRunSync('iptables', ['-w', '-t', 'nat', '-D', ...argv.slice(1)]);
  }
  for (const chain of chains) {
    // any other rule that still jumps to the chain goes first
    const again = tryRunSync('iptables-save', ['-t', 'nat']) ?? '';
    for (const line of again.split('\n')) {
      if (line.startsWith('-A ') && line.includes(`-j ${chain}`)) {
        tryRunSync('iptables', ['-w', '-t', 'nat', '-D', ...splitRule(line).slice(1)]);
      }
    }
    tryRunSync('iptables', ['-w', '-t', 'nat', '-F', chain]);
    tryRunSync('iptables', ['-w', '-t', 'nat', '-X', chain]);
  }
}

function removeNetworkResources(bridge: string, networkName: string): void {
  for (const l of links(['master', bridge])) tryRunSync('ip', ['link', 'del', l.ifname]);
  tryRunSync('ip', ['link', 'del', bridge]);
  for (const rule of forwardRules(bridge)) {
    // -D fails once the rule is gone; a rule inserted twice is removed twice
    for (let k = 0; k < 4 && tryRunSync('iptables', ['-w', '-D', ...rule]) !== undefined; k++);
  }
  removePortmapLeftovers(networkName);
  // libcni's result cache: <cacheDir>/results/<network>-<containerID>-<ifname>
  for (const dir of ['/var/lib/cni/results']) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) if (name.startsWith(`${networkName}-`)) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Named network namespaces (ip netns) with the given prefix. */
export function netnsNames(prefix: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync('/run/netns');
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith(prefix));
}

/**
 * Tear the network down. `allNetns`: delete every `cria-*` netns (only safe
 * when no other harness is alive); otherwise only this harness's prefix.
 */
export function teardownCniNetwork(net: CniNetwork, opts: { allNetns: boolean }): void {
  for (const name of netnsNames(opts.allNetns ? NETNS_PREFIX : net.netnsPrefix)) {
    if (tryRunSync('ip', ['netns', 'delete', name]) === undefined) {
      tryRunSync('umount', ['-l', path.join('/run/netns', name)]);
      fs.rmSync(path.join('/run/netns', name), { force: true });
    }
  }
  removeNetworkResources(net.bridge, net.networkName);
  // the bridge plugin (isGateway) turns ip_forward on; put it back when no harness bridge is left
  restoreIpForward(net.ipForwardBefore);
}
