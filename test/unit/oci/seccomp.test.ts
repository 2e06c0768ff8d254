import { SecurityProfile, SecurityProfile_ProfileType } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { DEFAULT_CAPABILITIES, newBaseSpec } from '../../../src/oci/defaults';
import {
  defaultSeccompProfile,
  parseSeccompProfile,
  resolveSeccomp,
  seccompArchFromNode,
  seccompChoice,
  seccompProfileFile,
  withSeccomp,
} from '../../../src/oci/seccomp';
import type { OciSeccomp } from '../../../src/oci/oci-types';

const allowedNames = (p: OciSeccomp) => p.syscalls?.find((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args)?.names ?? [];
const rulesFor = (p: OciSeccomp, name: string) => (p.syscalls ?? []).filter((s) => s.names.includes(name));
const sp = (profileType: SecurityProfile_ProfileType, localhostRef = '') => SecurityProfile.fromPartial({ profileType, localhostRef });

describe('defaultSeccompProfile', () => {
  const amd = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64');

  it('denies by default and lists architectures for x86_64 and aarch64', () => {
    expect(amd.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(amd.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(defaultSeccompProfile(DEFAULT_CAPABILITIES, 'arm64').architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  });

  it('allows what ordinary programs need', () => {
    for (const s of ['read', 'write', 'openat', 'execve', 'mmap', 'futex', 'epoll_wait', 'exit_group', 'rt_sigreturn', 'chroot', 'getrandom']) {
      expect(allowedNames(amd)).toContain(s);
    }
  });

  it('refuses host-global operations without capabilities', () => {
    for (const s of ['mount', 'umount2', 'unshare', 'setns', 'reboot', 'init_module', 'kexec_load', 'keyctl', 'add_key', 'bpf', 'clock_settime', 'swapon', 'open_by_handle_at', 'io_uring_setup', 'userfaultfd']) {
      expect(rulesFor(amd, s).filter((r) => r.action === 'SCMP_ACT_ALLOW')).toEqual([]);
    }
  });

  it('restricts clone to no namespace flags and sends clone3 to ENOSYS', () => {
    expect(rulesFor(amd, 'clone')).toEqual([
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    ]);
    expect(rulesFor(amd, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  });

  it('opens namespace syscalls for CAP_SYS_ADMIN, with no conflicting rules', () => {
    const admin = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'], 'amd64');
    for (const s of ['mount', 'unshare', 'setns', 'clone', 'clone3']) expect(allowedNames(admin)).toContain(s);
    expect(rulesFor(admin, 'clone')).toHaveLength(1);
    expect(rulesFor(admin, 'clone3')).toHaveLength(1);
  });

  it('tailors to other capabilities', () => {
    expect(allowedNames(defaultSeccompProfile(['CAP_SYS_TIME'], 'amd64'))).toContain('clock_settime');
    expect(allowedNames(defaultSeccompProfile(['CAP_SYS_MODULE'], 'amd64'))).toContain('finit_module');
    expect(allowedNames(defaultSeccompProfile([], 'amd64'))).not.toContain('chroot');
  });

  it('includes arch-specific calls only for their arch', () => {
    expect(allowedNames(amd)).toContain('arch_prctl');
    const arm = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'arm64');
    expect(allowedNames(arm)).not.toContain('arch_prctl');
    expect(allowedNames(arm)).toContain('set_tls');
  });

  it('expresses "one of" argument lists as separate rules', () => {
    const personality = rulesFor(amd, 'personality');
    expect(personality.map((r) => r.args?.[0].value)).toEqual([0, 8, 131072, 131080, 4294967295]);
    expect(rulesFor(amd, 'socket')).toEqual([{ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] }]);
  });

  it('lists every syscall at most once across unconditional rules', () => {
    const names = allowedNames(amd);
    expect(new Set(names).size).toBe(names.length);
  });

  it('maps node architectures', () => {
    expect(seccompArchFromNode('x64')).toBe('amd64');
    expect(seccompArchFromNode('arm64')).toBe('arm64');
  });
});

describe('seccompChoice', () => {
  const F = 'linux.security_context.seccomp';
  it('reads the typed field', () => {
    expect(seccompChoice(sp(SecurityProfile_ProfileType.RuntimeDefault), '', F)).toEqual({ kind: 'runtime-default' });
    expect(seccompChoice(sp(SecurityProfile_ProfileType.Unconfined), '', F)).toEqual({ kind: 'unconfined' });
    expect(seccompChoice(sp(SecurityProfile_ProfileType.Localhost, '/var/lib/kubelet/seccomp/p.json'), '', F)).toEqual({
      kind: 'localhost',
      path: '/var/lib/kubelet/seccomp/p.json',
    });
  });

  it('falls back to the deprecated string, and to unconfined', () => {
    expect(seccompChoice(undefined, 'runtime/default', F)).toEqual({ kind: 'runtime-default' });
    expect(seccompChoice(undefined, 'docker/default', F)).toEqual({ kind: 'runtime-default' });
    expect(seccompChoice(undefined, 'unconfined', F)).toEqual({ kind: 'unconfined' });
    expect(seccompChoice(undefined, 'localhost//p.json', F)).toEqual({ kind: 'localhost', path: '/p.json' });
    expect(seccompChoice(undefined, '', F)).toEqual({ kind: 'unconfined' });
  });

  it('rejects inconsistent requests naming the field', () => {
    expect(() => seccompChoice(sp(SecurityProfile_ProfileType.RuntimeDefault, '/x'), '', F)).toThrow(/seccomp\.localhost_ref/);
    expect(() => seccompChoice(sp(SecurityProfile_ProfileType.Localhost, 'rel.json'), '', F)).toThrow(/absolute/);
    expect(() => seccompChoice(sp(9 as SecurityProfile_ProfileType), '', F)).toThrow(/profile_type/);
    expect(() => seccompChoice(undefined, 'weird', F)).toThrow(/linux\.security_context\.seccomp_profile_path/);
  });

  it('tells the caller which file to read', () => {
    expect(seccompProfileFile({ kind: 'localhost', path: '/p.json' })).toBe('/p.json');
    expect(seccompProfileFile({ kind: 'runtime-default' })).toBeUndefined();
  });
});

describe('parseSeccompProfile', () => {
  it('accepts an OCI-format profile and drops unknown keys', () => {
    const p = parseSeccompProfile(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 1,
        architectures: ['SCMP_ARCH_X86_64'],
        comment: 'ignored',
        syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] }],
      },
      'f',
    );
    expect(p).toEqual({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] }],
    });
  });

  it('rejects invalid profiles with InvalidArgumentError naming the field', () => {
    const bad: unknown[] = [
      null,
      [],
      'x',
      {},
      { defaultAction: 'ALLOW' },
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: {} },
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [], action: 'SCMP_ACT_ALLOW' }] },
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'nope' }] },
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 9, value: 0, op: 'SCMP_CMP_EQ' }] }] },
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'EQ' }] }] },
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: [1] },
    ];
    for (const b of bad) {
      expect(() => parseSeccompProfile(b, 'linux.security_context.seccomp.localhost_ref')).toThrow(InvalidArgumentError);
      expect(() => parseSeccompProfile(b, 'linux.security_context.seccomp.localhost_ref')).toThrow(/^linux\.security_context\.seccomp\.localhost_ref: invalid seccomp profile/);
    }
  });
});

describe('resolveSeccomp and withSeccomp', () => {
  const base = { privileged: false, seccompEnabled: true, effectiveCaps: DEFAULT_CAPABILITIES, arch: 'amd64' as const, field: 'sc.seccomp' };

  it('applies nothing for Unconfined or privileged', () => {
    expect(resolveSeccomp({ ...base, choice: { kind: 'unconfined' } })).toBeUndefined();
    expect(resolveSeccomp({ ...base, privileged: true, choice: { kind: 'runtime-default' } })).toBeUndefined();
  });

  it('applies the default profile for RuntimeDefault', () => {
    expect(resolveSeccomp({ ...base, choice: { kind: 'runtime-default' } })?.defaultAction).toBe('SCMP_ACT_ERRNO');
  });

  it('uses the passed-in Localhost profile, and fails naming the field when it is missing', () => {
    const profile = { defaultAction: 'SCMP_ACT_LOG' };
    expect(resolveSeccomp({ ...base, choice: { kind: 'localhost', path: '/p.json' }, localhostProfile: profile })).toEqual(profile);
    expect(() => resolveSeccomp({ ...base, choice: { kind: 'localhost', path: '/p.json' } })).toThrow(/sc\.seccomp\.localhost_ref/);
  });

  it('refuses confinement when seccomp is unavailable', () => {
    expect(() => resolveSeccomp({ ...base, seccompEnabled: false, choice: { kind: 'runtime-default' } })).toThrow(/not supported/);
    expect(resolveSeccomp({ ...base, seccompEnabled: false, choice: { kind: 'unconfined' } })).toBeUndefined();
  });

  it('withSeccomp sets or removes linux.seccomp', () => {
    const spec = newBaseSpec();
    withSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' })(spec);
    expect(spec.linux.seccomp).toEqual({ defaultAction: 'SCMP_ACT_ALLOW' });
    withSeccomp(undefined)(spec);
    expect('seccomp' in spec.linux).toBe(false);
  });
});
