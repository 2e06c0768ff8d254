import { featuresFromRuncOutput, kernelHasMountSetattr, probeRuntimeFeatures } from '../../../src/host/runtime-features';

describe('runtime handler features', () => {
  it('needs Linux 5.12 for mount_setattr', () => {
    expect(kernelHasMountSetattr('6.18.0-rc1')).toBe(true);
    expect(kernelHasMountSetattr('5.12.0')).toBe(true);
    expect(kernelHasMountSetattr('5.11.22')).toBe(false);
    expect(kernelHasMountSetattr('4.19.0')).toBe(false);
    expect(kernelHasMountSetattr('garbage')).toBe(false);
  });

  it('reads rro from runc features, and only with a new enough kernel', () => {
    const withRro = JSON.stringify({ mountOptions: ['bind', 'rbind', 'ro', 'rro', 'rw'] });
    expect(featuresFromRuncOutput(withRro, '6.1.0').recursiveReadOnlyMounts).toBe(true);
    const old = featuresFromRuncOutput(withRro, '5.10.0');
    expect(old.recursiveReadOnlyMounts).toBe(false);
    expect(old.notes.join()).toMatch(/mount_setattr/);
    const without = featuresFromRuncOutput(JSON.stringify({ mountOptions: ['bind', 'ro'] }), '6.1.0');
    expect(without.recursiveReadOnlyMounts).toBe(false);
    expect(without.notes.join()).toMatch(/rro/);
    expect(featuresFromRuncOutput('Incorrect Usage', '6.1.0').recursiveReadOnlyMounts).toBe(false);
  });

  it('claims nothing for a handler whose binary is missing or is not runc', async () => {
    const f = await probeRuntimeFeatures(
      {
        broken: { type: 'io.containerd.runc.v2', binaryName: '/nonexistent/runc' },
        kata: { type: 'io.containerd.kata.v2' },
      },
      '6.1.0',
    );
    expect(f.get('broken')).toEqual({ recursiveReadOnlyMounts: false, notes: [expect.stringMatching(/\/nonexistent\/runc features failed/)] });
    expect(f.get('kata')!.recursiveReadOnlyMounts).toBe(false);
  });
});
