import { SupplementalGroupsPolicy } from '../gen/runtime/v1/api';
import type { Int64Value } from '../gen/runtime/v1/api';
import type { SpecOpt } from './oci-types';
import { MAX_ID, invalidField, toId } from './validate';
import { quote } from '../util/bounds';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** The identity of a container's first process, as ContainerStatus reports it. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Sorted and unique; includes the primary gid, as `id -G` would show. */
  additionalGids: number[];
  /** The passwd name of the uid, when the image has one. */
  username?: string;
}

function parseId(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

/**
 * Parses /etc/passwd text. Lines that do not parse (comments, NIS "+"
 * entries, truncated lines) are skipped rather than fatal: glibc does the
 * same, and a broken line in an image must not block every other user.
 */
export function parsePasswd(text: string | undefined): PasswdEntry[] {
  if (!text) return [];
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const f = line.split(':');
    if (f.length < 4 || f[0] === '') continue;
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (uid === undefined || gid === undefined) continue;
    entries.push({ name: f[0], uid, gid, home: f[5] ?? '', shell: (f[6] ?? '').trimEnd() });
  }
  return entries;
}

/** Parses /etc/group text with the same tolerance as parsePasswd. */
export function parseGroup(text: string | undefined): GroupEntry[] {
  if (!text) return [];
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const f = line.split(':');
    if (f.length < 3 || f[0] === '') continue;
    const gid = parseId(f[2]);
    if (gid === undefined) continue;
    const members = (f[3] ?? '')
      .trimEnd()
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    entries.push({ name: f[0], gid, members });
  }
  return entries;
}

/** Where the user came from, so an error can name the right field. */
export interface UserSource {
  /** "uid", "uid:gid", "name", "name:group" (or mixed). */
  spec: string;
  field: string;
}

/**
 * Picks the user string the way containerd does: run_as_username wins over
 * run_as_user; run_as_group attaches to either; with neither, the image's
 * User applies. A group without a user is refused: silently running as
 * root with a chosen group is never what the pod author meant.
 */
export function selectUserSource(
  sc: { runAsUser?: Int64Value; runAsGroup?: Int64Value; runAsUsername?: string },
  imageUser: string | undefined,
  fieldPrefix: string,
): UserSource | undefined {
  let user: string | undefined;
  let field = '';
  if (sc.runAsUser !== undefined) {
    user = String(toId(sc.runAsUser.value, `${fieldPrefix}.run_as_user`));
    field = `${fieldPrefix}.run_as_user`;
  }
  if (sc.runAsUsername) {
    user = sc.runAsUsername;
    field = `${fieldPrefix}.run_as_username`;
  }
  if (sc.runAsGroup !== undefined) {
    const gid = toId(sc.runAsGroup.value, `${fieldPrefix}.run_as_group`);
    if (user === undefined) {
      throw invalidField(`${fieldPrefix}.run_as_group`, 'is set without run_as_user or run_as_username');
    }
    return { spec: `${user}:${gid}`, field };
  }
  if (user !== undefined) return { spec: user, field };
  if (imageUser) return { spec: imageUser, field: 'image config User' };
  return undefined;
}

export interface ResolveUserOptions {
  passwd?: string;
  group?: string;
  supplementalGroups?: readonly bigint[];
  supplementalGroupsPolicy?: SupplementalGroupsPolicy;
  /** Field path for supplemental_groups errors. */
  fieldPrefix?: string;
}

/**
 * Resolves a user string against the image's passwd/group contents.
 * - "uid": gid from the passwd entry of that uid, else 0 (runs fine without
 *   a passwd file, like `docker run -u 1234`);
 * - "name": must exist in passwd;
 * - "x:y": each side numeric or a name that must exist.
 * Supplementary groups are the image groups listing the user (policy Merge
 * only) plus the CRI supplemental_groups, plus the primary gid.
 */
export function resolveUser(source: UserSource | undefined, opts: ResolveUserOptions = {}): ResolvedUser {
  const passwd = parsePasswd(opts.passwd);
  const groups = parseGroup(opts.group);
  const spec = source?.spec ?? '0';
  const field = source?.field ?? 'user';
  const parts = spec.split(':');
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw invalidField(field, `invalid user ${quote(spec)} (want uid, name, uid:gid or name:group)`);
  }

  let uid: number;
  let gid: number;
  let entry: PasswdEntry | undefined;
  const userNum = parseId(parts[0]);
  if (userNum !== undefined) {
    uid = userNum;
    entry = passwd.find((p) => p.uid === uid);
    gid = entry?.gid ?? 0;
  } else {
    if (/^\d+$/.test(parts[0])) throw invalidField(field, `uid ${parts[0]} is out of range`);
    entry = passwd.find((p) => p.name === parts[0]);
    if (!entry) throw invalidField(field, `user ${quote(parts[0])} not found in the image's /etc/passwd`);
    uid = entry.uid;
    gid = entry.gid;
  }
  if (parts.length === 2) {
    const groupNum = parseId(parts[1]);
    if (groupNum !== undefined) {
      gid = groupNum;
    } else {
      if (/^\d+$/.test(parts[1])) throw invalidField(field, `gid ${parts[1]} is out of range`);
      const g = groups.find((x) => x.name === parts[1]);
      if (!g) throw invalidField(field, `group ${quote(parts[1])} not found in the image's /etc/group`);
      gid = g.gid;
    }
  }

  const gids = new Set<number>([gid]);
  const policy = opts.supplementalGroupsPolicy ?? SupplementalGroupsPolicy.Merge;
  if (policy === SupplementalGroupsPolicy.Merge) {
    if (entry) for (const g of groups) if (g.members.includes(entry.name)) gids.add(g.gid);
  } else if (policy !== SupplementalGroupsPolicy.Strict) {
    throw invalidField(`${opts.fieldPrefix ?? 'security_context'}.supplemental_groups_policy`, `unknown policy ${policy}`);
  }
  (opts.supplementalGroups ?? []).forEach((g, i) => {
    gids.add(toId(g, `${opts.fieldPrefix ?? 'security_context'}.supplemental_groups[${i}]`));
  });

  const resolved: ResolvedUser = { uid, gid, additionalGids: [...gids].sort((a, b) => a - b) };
  if (entry) resolved.username = entry.name;
  return resolved;
}

export function withUser(user: ResolvedUser): SpecOpt {
  return (spec) => {
    spec.process.user = { uid: user.uid, gid: user.gid, additionalGids: [...user.additionalGids] };
  };
}
