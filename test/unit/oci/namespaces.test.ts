import { DeepPartial, NamespaceMode, NamespaceOption } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import { containerNamespaces, sandboxNamespaces, withHostname, withNamespaces } from '../../../src/oci/namespaces';

const ns = (p: DeepPartial<NamespaceOption>) => NamespaceOption.fromPartial(p);
const podNs = ns({ network: NamespaceMode.POD, ipc: NamespaceMode.POD, pid: NamespaceMode.CONTAINER });
const F = 'sc.namespace_options';
const ctr = (options: NamespaceOption, over: Partial<Parameters<typeof containerNamespaces>[0]> = {}) =>
  containerNamespaces({ options, sandboxOptions: podNs, sandboxPid: 42, cgroupNamespace: false, ...over }, F);

describe('sandboxNamespaces', () => {
  it('creates everything and joins the CNI netns for an ordinary pod', () => {
    expect(sandboxNamespaces({ options: podNs, netnsPath: '/run/netns/x' }, F)).toEqual([
      { type: 'mount' },
      { type: 'network', path: '/run/netns/x' },
      { type: 'uts' },
      { type: 'ipc' },
      { type: 'pid' },
    ]);
  });

  it('lets runc create the netns when no path is given', () => {
    expect(sandboxNamespaces({ options: podNs }, F)).toContainEqual({ type: 'network' });
  });

  it('uses the host network and UTS for host networking, and host IPC/PID for NODE', () => {
    const host = sandboxNamespaces({ options: ns({ network: NamespaceMode.NODE, ipc: NamespaceMode.NODE, pid: NamespaceMode.NODE }), netnsPath: '/ignored' }, F);
    expect(host).toEqual([{ type: 'mount' }]);
  });

  it('rejects modes that make no sense for a sandbox', () => {
    expect(() => sandboxNamespaces({ options: ns({ network: NamespaceMode.TARGET }) }, F)).toThrow(/sc\.namespace_options\.network/);
  });
});

describe('containerNamespaces', () => {
  it('shares the pod PID namespace when no options are given (the CRI default is POD)', () => {
    const out = containerNamespaces({ options: undefined, sandboxOptions: podNs, sandboxPid: 42, cgroupNamespace: false }, F);
    expect(out).toContainEqual({ type: 'pid', path: '/proc/42/ns/pid' });
  });

  it('joins the pod network, UTS and IPC through the pause process', () => {
    expect(ctr(podNs)).toEqual([
      { type: 'mount' },
      { type: 'network', path: '/proc/42/ns/net' },
      { type: 'uts', path: '/proc/42/ns/uts' },
      { type: 'ipc', path: '/proc/42/ns/ipc' },
      { type: 'pid' },
    ]);
  });

  it('prefers the netns path when given', () => {
    expect(ctr(podNs, { netnsPath: '/run/netns/x' })).toContainEqual({ type: 'network', path: '/run/netns/x' });
  });

  it('follows the PID mode', () => {
    expect(ctr(ns({ pid: NamespaceMode.POD }))).toContainEqual({ type: 'pid', path: '/proc/42/ns/pid' });
    expect(ctr(ns({ pid: NamespaceMode.CONTAINER }))).toContainEqual({ type: 'pid' });
    expect(ctr(ns({ pid: NamespaceMode.NODE })).some((n) => n.type === 'pid')).toBe(false);
    expect(ctr(ns({ pid: NamespaceMode.TARGET, targetId: 't' }), { targetPid: 77 })).toContainEqual({ type: 'pid', path: '/proc/77/ns/pid' });
  });

  it('treats POD PID of a host-PID sandbox as the host', () => {
    const sandboxOptions = ns({ pid: NamespaceMode.NODE });
    expect(ctr(ns({ pid: NamespaceMode.POD }), { sandboxOptions }).some((n) => n.type === 'pid')).toBe(false);
  });

  it('needs a target for TARGET', () => {
    expect(() => ctr(ns({ pid: NamespaceMode.TARGET }))).toThrow(/sc\.namespace_options\.target_id/);
    expect(() => ctr(ns({ pid: NamespaceMode.TARGET, targetId: 't' }))).toThrow(/not running/);
  });

  it('uses the host network/UTS/IPC when the pod does', () => {
    const host = ns({ network: NamespaceMode.NODE, ipc: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER });
    expect(ctr(host, { sandboxOptions: host })).toEqual([{ type: 'mount' }, { type: 'pid' }]);
  });

  it('adds a cgroup namespace when asked', () => {
    expect(ctr(podNs, { cgroupNamespace: true })).toContainEqual({ type: 'cgroup' });
  });

  it('needs a live sandbox pid', () => {
    expect(() => ctr(podNs, { sandboxPid: 0 })).toThrow(InvalidArgumentError);
  });
});

describe('withNamespaces and withHostname', () => {
  it('sets the hostname only with a UTS namespace', () => {
    const spec = newBaseSpec();
    withNamespaces([{ type: 'mount' }, { type: 'uts', path: '/proc/1/ns/uts' }])(spec);
    withHostname('web')(spec);
    expect(spec.hostname).toBe('web');
    withNamespaces([{ type: 'mount' }])(spec);
    withHostname('web')(spec);
    expect(spec.hostname).toBeUndefined();
  });
});
