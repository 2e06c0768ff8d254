import { promises as fs, readFileSync } from 'node:fs';

/** One line of /proc/self/mountinfo, as far as the adapter reads it. */
export interface MountEntry {
  mountpoint: string;
  /** Optional fields such as `shared:12` or `master:3` (propagation). */
  optionalFields: string[];
}

/** The kernel escapes space, tab, newline and backslash in paths as octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (!parts[4]) continue;
    const sep = parts.indexOf('-', 6);
    out.push({ mountpoint: unescape(parts[4]), optionalFields: parts.slice(6, sep < 0 ? undefined : sep) });
  }
  return out;
}

export function readMountinfo(): MountEntry[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

export async function readMountinfoAsync(): Promise<MountEntry[]> {
  return parseMountinfo(await fs.readFile('/proc/self/mountinfo', 'utf8'));
}

/**
 * The mount that holds `path`: the longest mount point that is the path or
 * a parent of it; of several at one point the last listed (the one on top).
 */
export function mountContaining(path: string, entries: MountEntry[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const e of entries) {
    const prefix = e.mountpoint.endsWith('/') ? e.mountpoint : `${e.mountpoint}/`;
    if ((path === e.mountpoint || path.startsWith(prefix)) && (!best || e.mountpoint.length >= best.mountpoint.length)) best = e;
  }
  return best;
}
