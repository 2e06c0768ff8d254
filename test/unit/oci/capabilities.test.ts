import { Capability } from '../../../src/gen/runtime/v1/api';
import { FailedPreconditionError, InvalidArgumentError } from '../../../src/errors';
import { ALL_CAPABILITIES, computeCapabilities, normalizeCapability, parseCapabilityMask, withCapabilities } from '../../../src/oci/capabilities';
import { DEFAULT_CAPABILITIES, newBaseSpec } from '../../../src/oci/defaults';

const req = (p: Partial<Capability>) => Capability.fromPartial(p);
const compute = (p: Partial<Capability> | undefined, available: readonly string[] = ALL_CAPABILITIES) =>
  computeCapabilities(DEFAULT_CAPABILITIES, p ? req(p) : undefined, available, 'sc');

describe('capability names', () => {
  it('accepts names with or without CAP_, in any case', () => {
    expect(normalizeCapability('net_admin', 'f')).toBe('CAP_NET_ADMIN');
    expect(normalizeCapability('NET_ADMIN', 'f')).toBe('CAP_NET_ADMIN');
    expect(normalizeCapability('CAP_NET_ADMIN', 'f')).toBe('CAP_NET_ADMIN');
    expect(normalizeCapability('cap_bpf', 'f')).toBe('CAP_BPF');
  });

  it('rejects unknown names with InvalidArgumentError naming the field', () => {
    expect(() => normalizeCapability('NET_MAGIC', 'f[0]')).toThrow(InvalidArgumentError);
    expect(() => normalizeCapability('NET_MAGIC', 'f[0]')).toThrow(/^f\[0\]: unknown capability "NET_MAGIC"/);
  });

  it('decodes a CapEff mask by bit number', () => {
    expect(ALL_CAPABILITIES).toHaveLength(41);
    expect(parseCapabilityMask('000001ffffffffff')).toEqual([...ALL_CAPABILITIES]);
    // This machine's root: everything except CAP_SYS_RESOURCE (bit 24).
    const noSysResource = (0x1ffffffffffn & ~(1n << 24n)).toString(16);
    expect(parseCapabilityMask(noSysResource)).not.toContain('CAP_SYS_RESOURCE');
    expect(parseCapabilityMask(noSysResource)).toHaveLength(40);
    expect(parseCapabilityMask('0000000000000001')).toEqual(['CAP_CHOWN']);
    expect(parseCapabilityMask('')).toEqual([]);
  });
});

describe('computeCapabilities', () => {
  it('keeps the defaults without a request', () => {
    const sets = compute(undefined);
    expect(new Set(sets.bounding)).toEqual(new Set(DEFAULT_CAPABILITIES));
    expect(sets.effective).toEqual(sets.bounding);
    expect(sets.permitted).toEqual(sets.bounding);
    expect(sets.inheritable).toEqual([]);
    expect(sets.ambient).toEqual([]);
  });

  it('adds and drops individual capabilities', () => {
    const sets = compute({ addCapabilities: ['NET_ADMIN', 'sys_time'], dropCapabilities: ['CAP_MKNOD', 'net_raw'] });
    expect(sets.bounding).toEqual(expect.arrayContaining(['CAP_NET_ADMIN', 'CAP_SYS_TIME']));
    expect(sets.bounding).not.toContain('CAP_MKNOD');
    expect(sets.bounding).not.toContain('CAP_NET_RAW');
    expect(sets.inheritable).toEqual([]);
  });

  it('drop ALL then add one leaves exactly that one', () => {
    expect(compute({ dropCapabilities: ['ALL'], addCapabilities: ['NET_BIND_SERVICE'] }).bounding).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(compute({ dropCapabilities: ['all'] }).bounding).toEqual([]);
  });

  it('add ALL then drop one leaves all available but that one', () => {
    const sets = compute({ addCapabilities: ['ALL'], dropCapabilities: ['CHOWN'] });
    expect(sets.bounding).toHaveLength(ALL_CAPABILITIES.length - 1);
    expect(sets.bounding).not.toContain('CAP_CHOWN');
  });

  it('ALL means what the adapter holds', () => {
    const available = ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');
    expect(compute({ addCapabilities: ['ALL'] }, available).bounding).not.toContain('CAP_SYS_RESOURCE');
  });

  it('refuses an explicit add the adapter does not hold with FailedPrecondition', () => {
    const available = ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');
    expect(() => compute({ addCapabilities: ['SYS_RESOURCE'] }, available)).toThrow(FailedPreconditionError);
    expect(() => compute({ addCapabilities: ['SYS_RESOURCE'] }, available)).toThrow(/add_capabilities\[0\]/);
  });

  it('rejects unknown names in add and drop, naming the index', () => {
    expect(() => compute({ addCapabilities: ['CHOWN', 'BOGUS'] })).toThrow(/sc\.capabilities\.add_capabilities\[1\]/);
    expect(() => compute({ dropCapabilities: ['BOGUS'] })).toThrow(/sc\.capabilities\.drop_capabilities\[0\]/);
  });

  it('puts ambient adds in every set, and a drop removes them everywhere', () => {
    const sets = compute({ addAmbientCapabilities: ['NET_ADMIN'] });
    for (const set of [sets.bounding, sets.effective, sets.permitted, sets.inheritable, sets.ambient]) {
      expect(set).toContain('CAP_NET_ADMIN');
    }
    const dropped = compute({ addAmbientCapabilities: ['NET_ADMIN'], dropCapabilities: ['NET_ADMIN'] });
    expect(dropped.ambient).toEqual([]);
    expect(dropped.bounding).not.toContain('CAP_NET_ADMIN');
    expect(() => compute({ addAmbientCapabilities: ['ALL'] })).toThrow(/add_ambient_capabilities\[0\]/);
  });
});

describe('withCapabilities', () => {
  it('writes the sets, omitting empty inheritable/ambient', () => {
    const spec = newBaseSpec();
    withCapabilities({ bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: [], ambient: [] })(spec);
    expect(spec.process.capabilities).toEqual({ bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] });
    withCapabilities({ bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: ['CAP_KILL'], ambient: ['CAP_KILL'] })(spec);
    expect(spec.process.capabilities?.ambient).toEqual(['CAP_KILL']);
    expect(spec.process.capabilities?.inheritable).toEqual(['CAP_KILL']);
  });
});
