import { InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import { sysctlNamespace, validateSysctls, withSysctls } from '../../../src/oci/sysctl';

const own = { network: true, ipc: true, uts: true };

describe('sysctls', () => {
  it('classifies namespaced sysctls', () => {
    expect(sysctlNamespace('net.ipv4.ip_forward')).toBe('network');
    expect(sysctlNamespace('net/ipv4/conf/eth0.100/rp_filter')).toBe('network');
    expect(sysctlNamespace('kernel.shmmax')).toBe('ipc');
    expect(sysctlNamespace('fs.mqueue.msg_max')).toBe('ipc');
    expect(sysctlNamespace('kernel.domainname')).toBe('uts');
    expect(sysctlNamespace('vm.swappiness')).toBeUndefined();
  });

  it('accepts namespaced sysctls of namespaces the pod owns', () => {
    expect(() => validateSysctls({ 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shm_rmid_forced': '1' }, own, 'linux.sysctls')).not.toThrow();
  });

  it('rejects host-global sysctls and those of host namespaces, naming the key', () => {
    expect(() => validateSysctls({ 'vm.swappiness': '1' }, own, 'linux.sysctls')).toThrow(InvalidArgumentError);
    expect(() => validateSysctls({ 'vm.swappiness': '1' }, own, 'linux.sysctls')).toThrow(/linux\.sysctls\["vm\.swappiness"\]/);
    expect(() => validateSysctls({ 'net.core.somaxconn': '1024' }, { ...own, network: false }, 'linux.sysctls')).toThrow(/network namespace/);
    expect(() => validateSysctls({ 'kernel.sem': '1 2 3 4' }, { ...own, ipc: false }, 'linux.sysctls')).toThrow(/ipc namespace/);
    expect(() => validateSysctls({ 'Bad Name': '1' }, own, 'linux.sysctls')).toThrow(/not a valid sysctl name/);
    expect(() => validateSysctls({ 'net.a': '1\n2' }, own, 'linux.sysctls')).toThrow(/one line/);
  });

  it('withSysctls merges and skips empty maps', () => {
    const spec = newBaseSpec();
    withSysctls({})(spec);
    expect(spec.linux.sysctl).toBeUndefined();
    withSysctls({ 'net.a': '1' })(spec);
    withSysctls({ 'net.b': '2' })(spec);
    expect(spec.linux.sysctl).toEqual({ 'net.a': '1', 'net.b': '2' });
  });
});
