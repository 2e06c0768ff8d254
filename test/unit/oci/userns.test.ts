import { DeepPartial, NamespaceMode, NamespaceOption } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import { applyOpts } from '../../../src/oci/oci-types';
import { mapToHost, podUserNamespace, sameMapping, withUserNamespace } from '../../../src/oci/userns';

const ns = (p: DeepPartial<NamespaceOption>) => NamespaceOption.fromPartial(p);
const F = 'sc.namespace_options';
const range = (hostId: number, containerId = 0, length = 65536) => ({ hostId, containerId, length });
const pod = (over: DeepPartial<NamespaceOption> = {}) =>
  ns({ usernsOptions: { mode: NamespaceMode.POD, uids: [range(983040)], gids: [range(983040)] }, pid: NamespaceMode.CONTAINER, ...over });

describe('podUserNamespace', () => {
  it('is absent for no options, NODE and an empty POD (the host user namespace)', () => {
    expect(podUserNamespace(undefined, F)).toBeUndefined();
    expect(podUserNamespace(ns({ usernsOptions: { mode: NamespaceMode.NODE } }), F)).toBeUndefined();
    expect(podUserNamespace(ns({ usernsOptions: { mode: NamespaceMode.POD } }), F)).toBeUndefined();
  });

  it('gives the one UID and one GID range of mode POD', () => {
    expect(podUserNamespace(pod(), F)).toEqual({
      uid: { containerID: 0, hostID: 983040, size: 65536 },
      gid: { containerID: 0, hostID: 983040, size: 65536 },
    });
  });

  it.each([
    ['a UID mapping without a GID one', { usernsOptions: { mode: NamespaceMode.POD, uids: [range(100000)] } }, /userns_options\.gids: exactly one/],
    ['two UID ranges', { usernsOptions: { mode: NamespaceMode.POD, uids: [range(100000), range(200000, 1)], gids: [range(100000)] } }, /uids: exactly one mapping/],
    ['a range not starting at container ID 0', { usernsOptions: { mode: NamespaceMode.POD, uids: [range(100000, 1)], gids: [range(100000)] } }, /container ID 0/],
    ['an empty range', { usernsOptions: { mode: NamespaceMode.POD, uids: [range(100000, 0, 0)], gids: [range(100000)] } }, /length must be greater than 0/],
    ['host root mapped', { usernsOptions: { mode: NamespaceMode.POD, uids: [range(0)], gids: [range(0)] } }, /host ID 0/],
    ['IDs past 32 bits', { usernsOptions: { mode: NamespaceMode.POD, uids: [range(4294901760, 0, 65536)], gids: [range(100000)] } }, /32-bit/],
    ['mode CONTAINER', { usernsOptions: { mode: NamespaceMode.CONTAINER, uids: [range(100000)], gids: [range(100000)] } }, /mode CONTAINER is not supported/],
    ['mode TARGET', { usernsOptions: { mode: NamespaceMode.TARGET } }, /mode TARGET is not supported/],
    ['NODE with mappings', { usernsOptions: { mode: NamespaceMode.NODE, uids: [range(100000)] } }, /NODE takes no ID mappings/],
    ['the host network', { ...pod(), network: NamespaceMode.NODE }, /network: .*host network/],
    ['the host PID namespace', { ...pod(), pid: NamespaceMode.NODE }, /pid: .*host PID/],
    ['the host IPC namespace', { ...pod(), ipc: NamespaceMode.NODE }, /ipc: .*host IPC/],
  ])('refuses %s with INVALID_ARGUMENT naming the field', (_what, options, message) => {
    let err: unknown;
    try {
      podUserNamespace(ns(options as DeepPartial<NamespaceOption>), F);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/^sc\.namespace_options/);
    expect((err as Error).message).toMatch(message);
  });
});

describe('withUserNamespace', () => {
  const m = podUserNamespace(pod(), F)!;
  it('creates the namespace with both mappings, or joins one by path', () => {
    const created = applyOpts(newBaseSpec('rootfs'), withUserNamespace(m));
    expect(created.linux.namespaces).toContainEqual({ type: 'user' });
    expect(created.linux.uidMappings).toEqual([{ containerID: 0, hostID: 983040, size: 65536 }]);
    expect(created.linux.gidMappings).toEqual([{ containerID: 0, hostID: 983040, size: 65536 }]);
    const joined = applyOpts(newBaseSpec('rootfs'), withUserNamespace(m, '/proc/42/ns/user'));
    expect(joined.linux.namespaces!.filter((n) => n.type === 'user')).toEqual([{ type: 'user', path: '/proc/42/ns/user' }]);
  });

  it('maps container IDs into the host range and leaves others out', () => {
    expect(mapToHost(0, m.uid)).toBe(983040);
    expect(mapToHost(65535, m.uid)).toBe(983040 + 65535);
    expect(mapToHost(65536, m.uid)).toBeUndefined();
    expect(sameMapping(m, podUserNamespace(pod(), F))).toBe(true);
    expect(sameMapping(m, undefined)).toBe(false);
  });
});
