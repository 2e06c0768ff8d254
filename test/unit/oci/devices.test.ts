import { Device } from '../../../src/gen/runtime/v1/api';
import { InternalError, InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import { DeviceLookup, HostDevice, devicePermissions, withAllDevicesAllowed, withCriDevices, withHostDevices } from '../../../src/oci/devices';

const fuse: HostDevice = { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 };
const snd: HostDevice[] = [
  { path: '/dev/snd/controlC0', type: 'c', major: 116, minor: 2 },
  { path: '/dev/snd/pcmC0D0p', type: 'c', major: 116, minor: 3 },
];
const lookup: DeviceLookup = (p) => {
  if (p === '/dev/fuse' || p === '/dev/myfuse-link') return fuse;
  if (p === '/dev/snd' || p === '/dev/snd/') return snd;
  throw new Error('no such file or directory');
};
const dev = (p: Partial<Device>) => Device.fromPartial(p);

describe('devicePermissions', () => {
  it('normalises and validates', () => {
    expect(devicePermissions('mrw', 'f')).toBe('rwm');
    expect(devicePermissions('r', 'f')).toBe('r');
    expect(devicePermissions('', 'f')).toBe('rwm');
    expect(() => devicePermissions('rwx', 'f')).toThrow(InvalidArgumentError);
  });
});

describe('withCriDevices', () => {
  it('creates the node at the container path and allows it in the device cgroup', () => {
    const spec = newBaseSpec();
    withCriDevices([dev({ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: 'mrw' })], lookup)(spec);
    expect(spec.linux.devices).toEqual([{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }]);
    expect(spec.linux.resources?.devices).toEqual([
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' },
    ]);
  });

  it('uses the container path even when the host path is a link', () => {
    const spec = newBaseSpec();
    withCriDevices([dev({ hostPath: '/dev/myfuse-link', containerPath: '/dev/fuse0', permissions: 'r' })], lookup)(spec);
    expect(spec.linux.devices?.[0].path).toBe('/dev/fuse0');
    expect(spec.linux.resources?.devices?.[1].access).toBe('r');
  });

  it('expands a directory into its nodes under the container path', () => {
    const spec = newBaseSpec();
    withCriDevices([dev({ hostPath: '/dev/snd', containerPath: '/dev/sound', permissions: 'rw' })], lookup)(spec);
    expect(spec.linux.devices?.map((d) => d.path)).toEqual(['/dev/sound/controlC0', '/dev/sound/pcmC0D0p']);
    expect(spec.linux.resources?.devices).toHaveLength(3);
  });

  it('gives nodes to the container user when asked', () => {
    const spec = newBaseSpec();
    withCriDevices([dev({ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: 'rwm' })], lookup, { uid: 1000, gid: 2000 })(spec);
    expect(spec.linux.devices?.[0]).toMatchObject({ uid: 1000, gid: 2000 });
  });

  it('reports lookup failures and bad fields against the CRI field', () => {
    const spec = newBaseSpec();
    expect(() => withCriDevices([dev({ hostPath: '/dev/nope', containerPath: '/dev/x', permissions: 'r' })], lookup)(spec)).toThrow(
      /devices\[0\]\.host_path: cannot use \/dev\/nope as a device: no such file/,
    );
    expect(() => withCriDevices([dev({ hostPath: '', containerPath: '/dev/x' })], lookup)(spec)).toThrow(/devices\[0\]\.host_path/);
    expect(() => withCriDevices([dev({ hostPath: '/dev/fuse', containerPath: 'x' })], lookup)(spec)).toThrow(/devices\[0\]\.container_path/);
    expect(() => withCriDevices([dev({ hostPath: '/dev/fuse', containerPath: '/x', permissions: 'q' })], lookup)(spec)).toThrow(
      /devices\[0\]\.permissions/,
    );
  });

  it('needs a lookup only when devices are requested', () => {
    const spec = newBaseSpec();
    withCriDevices([], undefined)(spec);
    expect(spec.linux.devices).toBeUndefined();
    expect(() => withCriDevices([dev({ hostPath: '/dev/fuse', containerPath: '/dev/fuse' })], undefined)(spec)).toThrow(InternalError);
  });
});

describe('privileged devices', () => {
  it('adds host devices at their own paths and allows everything', () => {
    const spec = newBaseSpec();
    withHostDevices([fuse, ...snd])(spec);
    withAllDevicesAllowed(spec);
    expect(spec.linux.devices?.map((d) => d.path)).toEqual(['/dev/fuse', '/dev/snd/controlC0', '/dev/snd/pcmC0D0p']);
    expect(spec.linux.resources?.devices).toEqual([{ allow: true, access: 'rwm' }]);
  });

  it('lets a CRI device replace a host device at the same path', () => {
    const spec = newBaseSpec();
    withHostDevices([fuse])(spec);
    withCriDevices([dev({ hostPath: '/dev/snd/controlC0', containerPath: '/dev/fuse', permissions: 'r' })], () => snd[0])(spec);
    expect(spec.linux.devices).toEqual([{ path: '/dev/fuse', type: 'c', major: 116, minor: 2 }]);
  });
});
