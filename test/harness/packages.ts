/**
 * Makes sure the host tools the harness drives are installed. On a developer
 * machine or CI (Debian 12, root) missing ones are installed with apt; apt is
 * only run when something is actually missing, so a warm start costs a few
 * stat() calls.
 */
import * as fs from 'fs';
import { childEnv, findCommand, run } from './util';

interface Requirement {
  /** What is checked, for messages. */
  what: string;
  /** Debian packages that provide it. */
  packages: string[];
  present(): boolean;
}

/** True when the file is an ELF executable without a program interpreter (statically linked). */
export function isStaticElf(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const hdr = Buffer.alloc(64);
    if (fs.readSync(fd, hdr, 0, 64, 0) < 64) return false;
    if (hdr.readUInt32BE(0) !== 0x7f454c46) return false;
    const is64 = hdr[4] === 2;
    const le = hdr[5] === 1;
    const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const phoff = is64 ? Number(le ? hdr.readBigUInt64LE(32) : hdr.readBigUInt64BE(32)) : u32(hdr, 28);
    const phentsize = u16(hdr, is64 ? 54 : 42);
    const phnum = u16(hdr, is64 ? 56 : 44);
    const ph = Buffer.alloc(phentsize * phnum);
    fs.readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (u32(ph, i * phentsize) === 3 /* PT_INTERP */) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function hasStaticLibc(): boolean {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib/arm-linux-gnueabihf', '/usr/lib'];
  return dirs.some((d) => fs.existsSync(`${d}/libc.a`));
}

const cmd = (name: string, ...packages: string[]): Requirement => ({
  what: `command ${name}`,
  packages,
  present: () => findCommand(name) !== undefined,
});

export const REQUIREMENTS: readonly Requirement[] = [
  cmd('containerd', 'containerd'),
  cmd('ctr', 'containerd'),
  cmd('runc', 'runc'),
  { what: '/usr/lib/cni/bridge', packages: ['containernetworking-plugins'], present: () => fs.existsSync('/usr/lib/cni/bridge') },
  {
    what: 'static busybox at /bin/busybox',
    packages: ['busybox-static'],
    present: () => isStaticElf('/bin/busybox'),
  },
  { what: '/usr/bin/docker-registry', packages: ['docker-registry'], present: () => fs.existsSync('/usr/bin/docker-registry') },
  cmd('ip', 'iproute2'),
  cmd('iptables', 'iptables'),
  cmd('htpasswd', 'apache2-utils'),
  cmd('gcc', 'gcc', 'libc6-dev'),
  { what: 'static libc (libc.a)', packages: ['libc6-dev'], present: hasStaticLibc },
  cmd('umount', 'mount'),
];

/** Requirements that are not met on this machine. */
export function missingRequirements(): Requirement[] {
  return REQUIREMENTS.filter((r) => !r.present());
}

/**
 * Install what is missing (root only). Returns the Debian packages installed;
 * an empty list means everything was already there.
 */
export async function ensurePackages(log: (msg: string) => void = () => undefined): Promise<string[]> {
  const missing = missingRequirements();
  if (missing.length === 0) return [];
  const packages = [...new Set(missing.flatMap((r) => r.packages))].sort();
  const what = missing.map((r) => r.what).join(', ');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(
      `the test harness needs ${what}; install the Debian packages as root: ` +
        `apt-get install -y ${packages.join(' ')} (or run the tests as root, which installs them)`,
    );
  }
  log(`harness: installing ${packages.join(' ')} (missing: ${what})`);
  const env = childEnv({ DEBIAN_FRONTEND: 'noninteractive' });
  await run('apt-get', ['update', '-q'], { env, timeoutMs: 600_000 });
  await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { env, timeoutMs: 900_000 });
  const still = missingRequirements();
  if (still.length > 0) {
    throw new Error(`after apt-get install ${packages.join(' ')} still missing: ${still.map((r) => r.what).join(', ')}`);
  }
  return packages;
}
