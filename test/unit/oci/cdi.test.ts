import { InvalidArgumentError } from '../../../src/errors';
import type { ContainerConfig, DeepPartial } from '../../../src/gen/runtime/v1/api';
import { buildContainerSpec } from '../../../src/oci';
import { CdiLookup, CdiSpec, parseCdiSpec, parseQualifiedName, requestedCdiDevices, resolveCdiDevices } from '../../../src/oci/cdi';
import type { HostDevice } from '../../../src/oci/devices';
import { containerConfig, containerInput } from './fixtures';

const NULL_DEV: HostDevice = { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 };

const gpuSpec: CdiSpec = parseCdiSpec(
  {
    cdiVersion: '0.6.0',
    kind: 'vendor.example/gpu',
    containerEdits: { env: ['VENDOR_LIB=/opt/vendor'], mounts: [{ hostPath: '/opt/vendor/lib', containerPath: '/usr/lib/vendor', options: ['ro', 'rbind'] }] },
    devices: [
      {
        name: 'gpu0',
        containerEdits: {
          env: ['GPU=0', 'PATH=/vendor/bin'],
          deviceNodes: [{ path: '/dev/vgpu0', hostPath: '/dev/null' }],
          hooks: [{ hookName: 'createContainer', path: '/usr/bin/vendor-hook', args: ['vendor-hook', 'gpu0'], timeout: 5 }],
          additionalGIDs: [44],
        },
      },
      { name: 'gpu1', containerEdits: { env: ['GPU=1'], deviceNodes: [{ path: '/dev/vgpu1', type: 'c', major: 195, minor: 1, permissions: 'rw' }] } },
    ],
  },
  '/etc/cdi/vendor.json',
);

const lookup: CdiLookup = (name) => {
  const q = parseQualifiedName(name);
  if (!q || q.kind !== gpuSpec.kind) return undefined;
  const device = gpuSpec.devices.find((d) => d.name === q.device);
  return device && { spec: gpuSpec, device };
};

const config = (over: DeepPartial<ContainerConfig>) => containerConfig(over);

describe('CDI names and spec files', () => {
  it('parse fully-qualified names only', () => {
    expect(parseQualifiedName('vendor.com/class=dev-0')).toEqual({ kind: 'vendor.com/class', device: 'dev-0' });
    expect(parseQualifiedName('nvidia.com/gpu=all')).toBeDefined();
    for (const bad of ['gpu0', 'vendor.com=dev', 'vendor.com/a/b=dev', 'vendor.com/class=', '/class=x', `vendor.com/class=${'x'.repeat(500)}`]) {
      expect(parseQualifiedName(bad)).toBeUndefined();
    }
  });

  it('refuse broken spec files, saying what is wrong', () => {
    expect(() => parseCdiSpec({ kind: 'a.b/c', devices: [{ name: 'x' }] }, 'f')).toThrow(/cdiVersion/);
    expect(() => parseCdiSpec({ cdiVersion: '0.6.0', kind: 'nokind', devices: [{ name: 'x' }] }, 'f')).toThrow(/kind/);
    expect(() => parseCdiSpec({ cdiVersion: '0.6.0', kind: 'a.b/c', devices: [] }, 'f')).toThrow(/at least one/);
    expect(() => parseCdiSpec({ cdiVersion: '0.6.0', kind: 'a.b/c', devices: [{ name: 'x' }, { name: 'x' }] }, 'f')).toThrow(/twice/);
    expect(() =>
      parseCdiSpec({ cdiVersion: '0.6.0', kind: 'a.b/c', devices: [{ name: 'x', containerEdits: { env: ['NOEQUALS'] } }] }, 'f'),
    ).toThrow(/NAME=value/);
    expect(() =>
      parseCdiSpec(
        { cdiVersion: '0.6.0', kind: 'a.b/c', devices: [{ name: 'x', containerEdits: { hooks: [{ hookName: 'whenever', path: '/x' }] } }] },
        'f',
      ),
    ).toThrow(/hookName/);
  });

  it('collect requested names from CDI_devices and cdi.k8s.io annotations, once each', () => {
    const names = requestedCdiDevices({
      CDIDevices: [{ name: 'vendor.example/gpu=gpu0' }],
      annotations: { 'cdi.k8s.io/plugin': 'vendor.example/gpu=gpu1, vendor.example/gpu=gpu0', other: 'vendor.example/gpu=gpu9' },
    });
    expect(names).toEqual(['vendor.example/gpu=gpu0', 'vendor.example/gpu=gpu1']);
    expect(() => requestedCdiDevices({ CDIDevices: [{ name: 'gpu0' }], annotations: {} })).toThrow(InvalidArgumentError);
    const many = Array.from({ length: 65 }, (_, i) => ({ name: `v.example/c=d${i}` }));
    expect(() => requestedCdiDevices({ CDIDevices: many, annotations: {} })).toThrow(/more than 64/);
  });

  it('name an unknown device, bounded', () => {
    expect(() => resolveCdiDevices(['vendor.example/gpu=gpu7'], lookup)).toThrow(/"vendor.example\/gpu=gpu7" is not defined/);
  });
});

describe('CDI edits in a container spec', () => {
  const { spec } = buildContainerSpec(
    containerInput({
      config: config({ CDIDevices: [{ name: 'vendor.example/gpu=gpu0' }], annotations: { 'cdi.k8s.io/x': 'vendor.example/gpu=gpu1' } }),
      cdiLookup: lookup,
      lookupDevice: (p) => {
        if (p !== '/dev/null') throw new Error('no such device');
        return NULL_DEV;
      },
    }),
  );

  it('apply the spec-wide edits once and each device\'s own: env, device nodes with cgroup rules, mounts, hooks, groups', () => {
    expect(spec.process.env).toEqual(
      expect.arrayContaining(['VENDOR_LIB=/opt/vendor', 'GPU=1', 'PATH=/vendor/bin']),
    );
    expect(spec.process.env!.filter((e) => e.startsWith('GPU='))).toEqual(['GPU=1']);
    expect(spec.linux.devices).toEqual(
      expect.arrayContaining([
        { path: '/dev/vgpu0', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
        { path: '/dev/vgpu1', type: 'c', major: 195, minor: 1 },
      ]),
    );
    expect(spec.linux.resources!.devices).toEqual(
      expect.arrayContaining([
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
        { allow: true, type: 'c', major: 195, minor: 1, access: 'rw' },
      ]),
    );
    expect(spec.mounts).toContainEqual({ destination: '/usr/lib/vendor', type: 'bind', source: '/opt/vendor/lib', options: ['ro', 'rbind'] });
    expect(spec.hooks?.createContainer).toEqual([{ path: '/usr/bin/vendor-hook', args: ['vendor-hook', 'gpu0'], timeout: 5 }]);
    expect(spec.process.user.additionalGids).toContain(44);
  });

  it('refuse a container asking for CDI devices where none can be looked up', () => {
    expect(() => buildContainerSpec(containerInput({ config: config({ CDIDevices: [{ name: 'vendor.example/gpu=gpu0' }] }) }))).toThrow(
      /CDI devices are not available/,
    );
  });
});
