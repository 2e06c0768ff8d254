import { promises as fs } from 'node:fs';

/** A process's identity as the kernel holds it. */
export interface ProcessIdentity {
  uid: number;
  gid: number;
  /** Supplementary groups, sorted, as setgroups(2) left them. */
  groups: number[];
}

/**
 * Reads the effective uid and gid and the supplementary groups from the
 * text of /proc/<pid>/status. Undefined when a line is missing or garbled
 * (a kernel without them, or not a status file at all).
 */
export function parseProcessIdentity(status: string): ProcessIdentity | undefined {
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*([^\\n]*)$`, 'm').exec(status)?.[1]?.trim();
  // Uid: and Gid: list real, effective, saved set and filesystem IDs; the effective one is what access checks use.
  const ids = (name: string) => field(name)?.split(/\s+/).map(Number);
  const uids = ids('Uid');
  const gids = ids('Gid');
  const groupsLine = field('Groups');
  if (!uids || !gids || groupsLine === undefined) return undefined;
  const uid = uids[1];
  const gid = gids[1];
  const groups = groupsLine === '' ? [] : groupsLine.split(/\s+/).map(Number);
  if (uid === undefined || gid === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  if (!groups.every(Number.isInteger)) return undefined;
  return { uid, gid, groups: [...new Set(groups)].sort((a, b) => a - b) };
}

/** The identity of a host process; undefined when it is gone or unreadable. */
export async function readProcessIdentity(pid: number): Promise<ProcessIdentity | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    return parseProcessIdentity(await fs.readFile(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return undefined;
  }
}
