import { Int64Value, SupplementalGroupsPolicy } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import { parseGroup, parsePasswd, resolveUser, selectUserSource, withUser } from '../../../src/oci/user';
import { GROUP, PASSWD } from './fixtures';

const id = (n: number): Int64Value => ({ value: BigInt(n) });
const files = { passwd: PASSWD, group: GROUP };

describe('passwd and group parsing', () => {
  it('parses valid lines and skips comments and broken ones', () => {
    const users = parsePasswd(PASSWD);
    expect(users.map((u) => u.name)).toEqual(['root', 'daemon', 'app', 'nobody']);
    expect(users[2]).toEqual({ name: 'app', uid: 1000, gid: 1000, home: '/home/app', shell: '/bin/sh' });
    expect(parsePasswd(undefined)).toEqual([]);
    expect(parsePasswd('x:x:notanumber:1::/:/bin/sh\n+nis::::::')).toEqual([]);
  });

  it('parses group members', () => {
    const groups = parseGroup(GROUP);
    expect(groups.find((g) => g.name === 'wheel')).toEqual({ name: 'wheel', gid: 10, members: ['root', 'app'] });
    expect(groups.find((g) => g.name === 'root')?.members).toEqual([]);
  });

  it('handles CRLF line endings', () => {
    expect(parsePasswd('a:x:5:6::/:/bin/sh\r\n')[0]).toMatchObject({ name: 'a', uid: 5, gid: 6, shell: '/bin/sh' });
    expect(parseGroup('g:x:7:a,b\r\n')[0]).toEqual({ name: 'g', gid: 7, members: ['a', 'b'] });
  });
});

describe('selectUserSource', () => {
  it('prefers run_as_username over run_as_user', () => {
    expect(selectUserSource({ runAsUser: id(5), runAsUsername: 'app' }, 'nobody', 'sc')).toEqual({ spec: 'app', field: 'sc.run_as_username' });
  });

  it('attaches run_as_group', () => {
    expect(selectUserSource({ runAsUser: id(5), runAsGroup: id(7) }, undefined, 'sc')).toEqual({ spec: '5:7', field: 'sc.run_as_user' });
  });

  it('falls back to the image User', () => {
    expect(selectUserSource({}, 'app:audio', 'sc')).toEqual({ spec: 'app:audio', field: 'image config User' });
    expect(selectUserSource({}, '', 'sc')).toBeUndefined();
  });

  it('treats run_as_user 0 as set (not as "unset")', () => {
    expect(selectUserSource({ runAsUser: id(0) }, 'app', 'sc')).toEqual({ spec: '0', field: 'sc.run_as_user' });
  });

  it('refuses run_as_group without a user, and out-of-range ids', () => {
    expect(() => selectUserSource({ runAsGroup: id(7) }, 'app', 'sc')).toThrow(InvalidArgumentError);
    expect(() => selectUserSource({ runAsGroup: id(7) }, 'app', 'sc')).toThrow(/sc\.run_as_group/);
    expect(() => selectUserSource({ runAsUser: id(-1) }, undefined, 'sc')).toThrow(/sc\.run_as_user/);
    expect(() => selectUserSource({ runAsUser: { value: 2n ** 31n } }, undefined, 'sc')).toThrow(/sc\.run_as_user/);
  });
});

describe('resolveUser', () => {
  const src = (spec: string) => ({ spec, field: 'f' });

  it('defaults to root with root\'s groups', () => {
    expect(resolveUser(undefined, files)).toEqual({ uid: 0, gid: 0, additionalGids: [0, 10], username: 'root' });
  });

  it('resolves a numeric uid with the gid from passwd and its group memberships', () => {
    expect(resolveUser(src('1000'), files)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29, 1000], username: 'app' });
  });

  it('uses gid 0 for a numeric uid missing from passwd, or without any passwd', () => {
    expect(resolveUser(src('4321'), files)).toEqual({ uid: 4321, gid: 0, additionalGids: [0] });
    expect(resolveUser(src('4321'), {})).toEqual({ uid: 4321, gid: 0, additionalGids: [0] });
  });

  it('resolves a name', () => {
    expect(resolveUser(src('daemon'), files)).toEqual({ uid: 1, gid: 1, additionalGids: [1, 50], username: 'daemon' });
  });

  it('resolves uid:gid without lookups for the pair but still merges memberships', () => {
    expect(resolveUser(src('1000:2000'), files)).toEqual({ uid: 1000, gid: 2000, additionalGids: [10, 29, 2000], username: 'app' });
    expect(resolveUser(src('7:8'), {})).toEqual({ uid: 7, gid: 8, additionalGids: [8] });
  });

  it('resolves name:group and uid:group', () => {
    expect(resolveUser(src('app:audio'), files)).toMatchObject({ uid: 1000, gid: 29 });
    expect(resolveUser(src('65534:wheel'), files)).toMatchObject({ uid: 65534, gid: 10 });
  });

  it('fails naming the field for unknown users and groups, or malformed strings', () => {
    expect(() => resolveUser(src('ghost'), files)).toThrow(InvalidArgumentError);
    expect(() => resolveUser(src('ghost'), files)).toThrow(/^f: user "ghost" not found/);
    expect(() => resolveUser(src('app:ghosts'), files)).toThrow(/group "ghosts" not found/);
    expect(() => resolveUser(src('app'), {})).toThrow(/not found/);
    expect(() => resolveUser(src('a:b:c'), files)).toThrow(/invalid user/);
    expect(() => resolveUser(src(':5'), files)).toThrow(/invalid user/);
    expect(() => resolveUser(src('99999999999'), files)).toThrow(/out of range/);
  });

  it('adds CRI supplemental groups, sorted and unique', () => {
    expect(resolveUser(src('1000'), { ...files, supplementalGroups: [5000n, 10n, 5000n] }).additionalGids).toEqual([10, 29, 1000, 5000]);
  });

  it('with the Strict policy ignores the image /etc/group', () => {
    expect(
      resolveUser(src('1000'), { ...files, supplementalGroups: [5000n], supplementalGroupsPolicy: SupplementalGroupsPolicy.Strict }).additionalGids,
    ).toEqual([1000, 5000]);
  });

  it('rejects bad supplemental groups naming the field', () => {
    expect(() => resolveUser(src('1'), { supplementalGroups: [1n, -3n], fieldPrefix: 'linux.security_context' })).toThrow(
      /linux\.security_context\.supplemental_groups\[1\]/,
    );
  });

  it('is applied by withUser', () => {
    const spec = newBaseSpec();
    withUser({ uid: 1, gid: 2, additionalGids: [2, 3] })(spec);
    expect(spec.process.user).toEqual({ uid: 1, gid: 2, additionalGids: [2, 3] });
  });
});
