import { SecurityProfile, SecurityProfile_ProfileType } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { DEFAULT_MASKED_PATHS, newBaseSpec } from '../../../src/oci/defaults';
import {
  checkAppArmor,
  withMaskedPaths,
  withNoNewPrivileges,
  withPrivilegedFilesystems,
  withReadonlyPaths,
  withReadonlyRootfs,
  withWritableSysfs,
} from '../../../src/oci/security';

describe('masked and readonly paths', () => {
  it('keeps the defaults for an empty list and replaces them otherwise', () => {
    const spec = newBaseSpec();
    withMaskedPaths([], 'm')(spec);
    expect(spec.linux.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    withMaskedPaths(['/proc/kcore', '/proc/custom/'], 'm')(spec);
    expect(spec.linux.maskedPaths).toEqual(['/proc/kcore', '/proc/custom']);
    withReadonlyPaths(['/proc/sys'], 'r')(spec);
    expect(spec.linux.readonlyPaths).toEqual(['/proc/sys']);
  });

  it('rejects relative paths naming the index', () => {
    expect(() => withMaskedPaths(['/ok', 'proc'], 'sc.masked_paths')(newBaseSpec())).toThrow(/sc\.masked_paths\[1\]/);
    expect(() => withReadonlyPaths(['x'], 'sc.readonly_paths')(newBaseSpec())).toThrow(InvalidArgumentError);
  });
});

describe('privileged filesystems', () => {
  it('clears masked/readonly paths and makes sysfs and cgroupfs writable', () => {
    const spec = newBaseSpec();
    withPrivilegedFilesystems(spec);
    expect(spec.linux.maskedPaths).toEqual([]);
    expect(spec.linux.readonlyPaths).toEqual([]);
    expect(spec.mounts.find((m) => m.type === 'sysfs')?.options).toEqual(['nosuid', 'noexec', 'nodev', 'rw']);
    expect(spec.mounts.find((m) => m.type === 'cgroup')?.options).toContain('rw');
    expect(spec.mounts.find((m) => m.type === 'cgroup')?.options).not.toContain('ro');
  });
});

describe('withWritableSysfs', () => {
  it('makes only sysfs writable', () => {
    const spec = newBaseSpec();
    withWritableSysfs(spec);
    expect(spec.mounts.find((m) => m.type === 'sysfs')?.options).toContain('rw');
    expect(spec.mounts.find((m) => m.type === 'cgroup')?.options).toContain('ro');
    expect(spec.linux.maskedPaths?.length).toBeGreaterThan(0);
  });
});

describe('rootfs and no_new_privs', () => {
  it('sets and clears the flags', () => {
    const spec = newBaseSpec();
    withReadonlyRootfs(true)(spec);
    withNoNewPrivileges(true)(spec);
    expect(spec.root.readonly).toBe(true);
    expect(spec.process.noNewPrivileges).toBe(true);
    withReadonlyRootfs(false)(spec);
    expect(spec.root.readonly).toBeUndefined();
  });
});

describe('checkAppArmor', () => {
  const sp = (profileType: SecurityProfile_ProfileType, localhostRef = '') => SecurityProfile.fromPartial({ profileType, localhostRef });
  it('ignores RuntimeDefault and Unconfined (no AppArmor on these nodes)', () => {
    expect(() => checkAppArmor(sp(SecurityProfile_ProfileType.RuntimeDefault), '', 'sc.apparmor')).not.toThrow();
    expect(() => checkAppArmor(sp(SecurityProfile_ProfileType.Unconfined), '', 'sc.apparmor')).not.toThrow();
    expect(() => checkAppArmor(undefined, 'runtime/default', 'sc.apparmor')).not.toThrow();
    expect(() => checkAppArmor(undefined, '', 'sc.apparmor')).not.toThrow();
  });

  it('refuses a named profile it cannot apply', () => {
    expect(() => checkAppArmor(sp(SecurityProfile_ProfileType.Localhost, 'k8s-nginx'), '', 'sc.apparmor')).toThrow(/sc\.apparmor\.localhost_ref/);
    expect(() => checkAppArmor(undefined, 'localhost/k8s-nginx', 'sc.apparmor')).toThrow(/sc\.apparmor_profile/);
  });
});
