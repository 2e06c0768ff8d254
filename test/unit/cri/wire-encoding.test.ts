import { ContainerStatusResponse, ListPodSandboxResponse, PodSandboxConfig, PodSandboxStatusResponse } from '../../../src/gen/runtime/v1/api';
import { toCriSandbox, toCriSandboxStatus } from '../../../src/cri/sandbox-mapping';
import { RUNTIME_SERVICE } from '../../../src/cri/wire-encoding';
import type { SandboxRecord } from '../../../src/sandbox/model';

function record(i: number): SandboxRecord {
  return {
    id: `pod${i}`.padEnd(64, '0'),
    name: `p${i}`,
    config: PodSandboxConfig.fromPartial({ metadata: { name: `p${i}`, namespace: 'ns', uid: `u${i}` }, labels: { app: 'x', i: String(i) }, annotations: { a: 'b' } }),
    createdAt: 1_700_000_000_000_000_000n + BigInt(i),
    runtimeHandler: '',
    runtimeType: 'io.containerd.runc.v2',
    imageId: 'sha256:p',
    ips: ['10.0.0.1', 'fd00::1'],
    networkTornDown: false,
    state: 'ready',
    pid: 1,
  };
}

describe('cached List/Status encoding', () => {
  it('gives the same bytes as the generated encoder, and follows a record that changes', () => {
    const records = [record(1), record(2)];
    const serialize = RUNTIME_SERVICE.listPodSandbox!.responseSerialize as (r: ListPodSandboxResponse) => Buffer;
    const answer = () => ({ items: records.map(toCriSandbox) });
    expect(Buffer.compare(serialize(answer()), Buffer.from(ListPodSandboxResponse.encode(answer()).finish()))).toBe(0);
    serialize(answer());
    records[0]!.state = 'notready';
    const decoded = ListPodSandboxResponse.decode(serialize(answer()));
    expect(decoded.items.map((p) => p.state)).toEqual([1, 0]);
    expect(decoded).toEqual(ListPodSandboxResponse.decode(ListPodSandboxResponse.encode(answer()).finish()));
  });

  it('encodes the rest of a status answer (info, timestamp) around the cached status', () => {
    const r = record(3);
    const serialize = RUNTIME_SERVICE.podSandboxStatus!.responseSerialize as (r: PodSandboxStatusResponse) => Buffer;
    const response: PodSandboxStatusResponse = { status: toCriSandboxStatus(r), info: { info: '{}' }, containersStatuses: [], timestamp: 42n };
    expect(PodSandboxStatusResponse.decode(serialize(response))).toEqual(PodSandboxStatusResponse.decode(PodSandboxStatusResponse.encode(response).finish()));
    const empty = RUNTIME_SERVICE.containerStatus!.responseSerialize as (r: ContainerStatusResponse) => Buffer;
    expect(empty({ status: undefined, info: {} }).length).toBe(0);
  });
});
