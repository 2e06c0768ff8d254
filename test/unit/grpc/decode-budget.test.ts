import { CreateContainerRequest, PodSandboxStatusRequest, RuntimeServiceService } from '../../../src/gen/runtime/v1/api';
import { RefusedRequest, withDecodeBudget } from '../../../src/grpc/decode-budget';

const decoderOf = (budget: number) => withDecodeBudget(RuntimeServiceService, budget).createContainer!.requestDeserialize;

function encoded(labels: number): Buffer {
  const request = CreateContainerRequest.fromPartial({
    podSandboxId: 'p',
    config: { metadata: { name: 'c' }, labels: Object.fromEntries(Array.from({ length: labels }, (_, i) => [`k${i}`, 'v'])) },
  });
  return Buffer.from(CreateContainerRequest.encode(request).finish());
}

describe('decode budget', () => {
  test('a request within the budget decodes as the generated decoder does', () => {
    const bytes = encoded(100);
    expect(decoderOf(10_000)(bytes)).toEqual(CreateContainerRequest.decode(bytes));
  });

  test('a request over the budget becomes a RefusedRequest whose details are short and carry none of its content', () => {
    const out = decoderOf(1000)(encoded(1000));
    expect(out).toBeInstanceOf(RefusedRequest);
    const details = (out as RefusedRequest).details;
    expect(details).toContain('more than 1000 protobuf fields and lengths');
    expect(details.length).toBeLessThan(200);
  });

  test('varint values count too (a packed or repeated int64 cannot slip through)', () => {
    const decode = withDecodeBudget(RuntimeServiceService, 3).podSandboxStatus!.requestDeserialize;
    const ok = Buffer.from(PodSandboxStatusRequest.encode({ podSandboxId: 'x', verbose: true }).finish());
    // tag, length, tag, bool: 4 reads.
    expect(decode(ok)).toBeInstanceOf(RefusedRequest);
    expect(withDecodeBudget(RuntimeServiceService, 4).podSandboxStatus!.requestDeserialize(ok)).toEqual({ podSandboxId: 'x', verbose: true });
  });

  test('a malformed message still fails as a decode error, not as a refusal', () => {
    expect(() => decoderOf(1000)(Buffer.from([0x0a, 0xff]))).toThrow();
  });
});
