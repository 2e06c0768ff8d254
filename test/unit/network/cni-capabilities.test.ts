import { InvalidArgumentError } from '../../../src/errors';
import { PodSandboxConfig, Protocol } from '../../../src/gen/runtime/v1/api';
import { cniCapabilities, parseBandwidth } from '../../../src/network/cni-capabilities';
import type { DeepPartial } from '../oci/fixtures';

const pod = (over: DeepPartial<PodSandboxConfig> = {}) =>
  PodSandboxConfig.fromPartial({ metadata: { name: 'p', namespace: 'n', uid: 'u' }, ...over });

describe('parseBandwidth: a Kubernetes quantity as bits per second', () => {
  it.each([
    ['1000', 1000],
    ['10k', 10_000],
    ['10M', 10_000_000],
    ['1.5M', 1_500_000],
    ['2G', 2e9],
    ['1T', 1e12],
    ['1Ki', 1024],
    ['10Mi', 10 * 1024 * 1024],
    ['1Gi', 1024 ** 3],
    ['1Ti', 1024 ** 4],
    [' 10M ', 10_000_000],
  ])('%s is %d', (value, bits) => {
    expect(parseBandwidth(value)).toBe(bits);
  });

  it('is absent for a missing or empty annotation', () => {
    expect(parseBandwidth(undefined)).toBeUndefined();
    expect(parseBandwidth('')).toBeUndefined();
  });

  it.each(['fast', '10 M', '10m', '10MB', '-1M', '1e6', 'M', '10K'])('refuses %j with InvalidArgument', (value) => {
    expect(() => parseBandwidth(value)).toThrow(InvalidArgumentError);
    expect(() => parseBandwidth(value)).toThrow(/is not a quantity like 10M/);
  });

  it('quotes only a bounded part of a long bad value', () => {
    const err = (() => {
      try {
        parseBandwidth('x'.repeat(10_000));
      } catch (e) {
        return e as Error;
      }
      throw new Error('no error');
    })();
    expect(err.message.length).toBeLessThan(200);
  });
});

describe('cniCapabilities', () => {
  it('turns the bandwidth annotations into the bandwidth capability, with a rate-only burst', () => {
    const caps = cniCapabilities(
      pod({ annotations: { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '1Mi' } }),
      '',
    );
    expect(caps.bandwidth).toEqual({ ingressRate: 10_000_000, ingressBurst: 2 ** 31 - 1, egressRate: 1024 * 1024, egressBurst: 2 ** 31 - 1 });
  });

  it('sets only the direction that is annotated', () => {
    expect(cniCapabilities(pod({ annotations: { 'kubernetes.io/egress-bandwidth': '5k' } }), '').bandwidth).toEqual({
      egressRate: 5000,
      egressBurst: 2 ** 31 - 1,
    });
    expect(cniCapabilities(pod(), '').bandwidth).toBeUndefined();
  });

  it('refuses a pod whose bandwidth annotation is not a quantity', () => {
    expect(() => cniCapabilities(pod({ annotations: { 'kubernetes.io/ingress-bandwidth': 'lots' } }), '')).toThrow(InvalidArgumentError);
  });

  it('maps host ports with their protocol and host IP, and leaves out ports without a host port', () => {
    const caps = cniCapabilities(
      pod({
        portMappings: [
          { protocol: Protocol.TCP, containerPort: 80, hostPort: 8080, hostIp: '' },
          { protocol: Protocol.UDP, containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' },
          { protocol: Protocol.SCTP, containerPort: 9, hostPort: 9999, hostIp: '' },
          { protocol: Protocol.TCP, containerPort: 81, hostPort: 0, hostIp: '' },
        ],
      }),
      '',
    );
    expect(caps.portMappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
      { hostPort: 9999, containerPort: 9, protocol: 'sctp' },
    ]);
  });

  it('passes the DNS config and the pod CIDR as ipRanges when they are set', () => {
    const caps = cniCapabilities(pod({ dnsConfig: { servers: ['10.0.0.10'], searches: ['svc.local'], options: ['ndots:5'] } }), '10.244.0.0/24');
    expect(caps.dns).toEqual({ servers: ['10.0.0.10'], searches: ['svc.local'], options: ['ndots:5'] });
    expect(caps.ipRanges).toEqual([[{ subnet: '10.244.0.0/24' }]]);
    const bare = cniCapabilities(pod(), '');
    expect(bare.dns).toBeUndefined();
    expect(bare.ipRanges).toBeUndefined();
  });
});
