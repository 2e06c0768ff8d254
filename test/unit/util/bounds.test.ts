import { ContainerConfig, CreateContainerRequest, ExecSyncRequest, PodSandboxConfig, RunPodSandboxRequest } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { checkRequestBounds, clip, quote } from '../../../src/util/bounds';

function refusal(request: unknown): string {
  try {
    checkRequestBounds(request);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as Error).message;
  }
  throw new Error('the request was accepted');
}

const pod = (extra: Partial<PodSandboxConfig> = {}) =>
  RunPodSandboxRequest.fromPartial({ config: { metadata: { name: 'web', namespace: 'default', uid: 'u-1', attempt: 0 }, hostname: 'web', ...extra } });
const container = (extra: Partial<ContainerConfig> = {}) =>
  CreateContainerRequest.fromPartial({ podSandboxId: 'a'.repeat(64), config: { metadata: { name: 'c' }, image: { image: 'busybox' }, ...extra } });

describe('quote and clip', () => {
  it('keeps short strings whole and JSON-quoted, so a newline cannot start a log line', () => {
    expect(quote('a\nb')).toBe('"a\\nb"');
    expect(clip('abc')).toBe('abc');
  });
  it('cuts long input and says how long it was', () => {
    const q = quote('x'.repeat(1 << 20));
    expect(q.length).toBeLessThan(200);
    expect(q).toContain('(1048576 characters)');
    expect(clip('y'.repeat(500), 10)).toBe(`${'y'.repeat(10)}… (500 characters)`);
  });
  it('shows a non-string value as its JSON text', () => {
    expect(quote({ a: 1 })).toBe('{"a":1}');
    expect(quote(undefined)).toBe('undefined');
  });
});

describe('checkRequestBounds', () => {
  it('accepts what the kubelet sends', () => {
    expect(() => checkRequestBounds(pod({ labels: { 'io.kubernetes.pod.name': 'web' }, annotations: { 'kubernetes.io/config.seen': 'x' } }))).not.toThrow();
    expect(() => checkRequestBounds(container({ envs: [{ key: 'A', value: Buffer.from('b') }], args: ['sh', '-c', 'sleep 1'] }))).not.toThrow();
  });

  it('refuses an oversized or malformed ID without quoting it whole', () => {
    const msg = refusal(ExecSyncRequest.fromPartial({ containerId: 'f'.repeat(1 << 20), cmd: ['true'] }));
    expect(msg).toMatch(/^container_id: .*longer than an ID \(128 characters at most\)/);
    expect(msg.length).toBeLessThan(200);
    expect(refusal(ExecSyncRequest.fromPartial({ containerId: '../../etc', cmd: ['true'] }))).toContain('container_id');
    // a unique prefix, as crictl users type it, is still an ID
    expect(() => checkRequestBounds(ExecSyncRequest.fromPartial({ containerId: 'abcd', cmd: ['true'] }))).not.toThrow();
  });

  it('checks IDs in list filters and the PID namespace target', () => {
    expect(refusal({ filter: { id: 'x y' } })).toContain('filter.id');
    expect(refusal(CreateContainerRequest.fromPartial({ podSandboxId: 'a'.repeat(64), config: { linux: { securityContext: { namespaceOptions: { targetId: 'a/b' } } } } }))).toContain(
      'config.linux.security_context.namespace_options.target_id',
    );
  });

  it('refuses names with whitespace or control characters and overlong ones', () => {
    expect(refusal(pod({ metadata: { name: 'a\nb', namespace: 'n', uid: 'u', attempt: 0 } }))).toContain('config.metadata.name');
    expect(refusal(pod({ metadata: { name: 'a', namespace: 'n'.repeat(254), uid: 'u', attempt: 0 } }))).toContain('config.metadata.namespace');
  });

  it('bounds the number and the total size of labels and annotations', () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 100_000; i++) many[`k${i}`] = 'v';
    expect(refusal(pod({ labels: many }))).toMatch(/^config\.labels: has 100000 entries; at most 1024/);
    expect(refusal(pod({ annotations: many }))).toMatch(/^config\.annotations: has 100000 entries; at most 4096/);
    const big: Record<string, string> = {};
    for (let i = 0; i < 10; i++) big[`k${i}`] = 'v'.repeat(60 * 1024);
    expect(refusal(pod({ annotations: big }))).toBe('config.annotations: holds more than 512 KiB of keys and values, the most accepted');
    expect(refusal(pod({ labels: { ['k'.repeat(400)]: 'v' } }))).toMatch(/key is 400 characters long; at most 317/);
  });

  it('bounds devices, mounts, env and args with the field and the limit in the message', () => {
    const devices = Array.from({ length: 100_000 }, () => ({ containerPath: '/dev/null', hostPath: '/dev/null', permissions: 'rwm' }));
    expect(refusal(container({ devices }))).toBe('config.devices: has 100000 entries; at most 1024 are accepted');
    expect(refusal(container({ envs: Array.from({ length: 100_000 }, (_, i) => ({ key: `E${i}`, value: Buffer.alloc(0) })) }))).toContain('config.envs: has 100000 entries');
    expect(refusal(container({ args: Array.from({ length: 100_000 }, () => 'a') }))).toContain('config.args: has 100000 entries');
    expect(refusal(container({ args: ['x'.repeat(200 * 1024)] }))).toBe('config.args[0]: is 204800 characters long; at most 131072 are accepted');
    expect(refusal(container({ CDIDevices: Array.from({ length: 2000 }, () => ({ name: 'v.com/c=x' })) }))).toContain('config.CDI_devices');
  });

  it('bounds an env value (bytes on the wire) at the kernel\'s limit for one string', () => {
    expect(refusal(container({ envs: [{ key: 'A', value: Buffer.alloc(200 * 1024) }] }))).toBe(
      'config.envs[0].value: is 204800 bytes long; at most 131072 are accepted',
    );
  });

  it('bounds every other string at PATH_MAX', () => {
    expect(refusal(container({ workingDir: '/'.repeat(5000) }))).toBe('config.working_dir: is 5000 characters long; at most 4096 are accepted');
  });
});
