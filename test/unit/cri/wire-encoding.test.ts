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

  it('hands out the last answer again only while its messages and the rest are the same', () => {
    const records = [record(4), record(5), record(6)];
    const serialize = RUNTIME_SERVICE.listPodSandbox!.responseSerialize as (r: ListPodSandboxResponse) => Buffer;
    const answer = () => ({ items: records.map(toCriSandbox) });
    const first = serialize(answer());
    expect(serialize(answer())).toBe(first);
    // One item fewer, a changed record, other order: each a different answer.
    const fewer = serialize({ items: records.slice(1).map(toCriSandbox) });
    expect(ListPodSandboxResponse.decode(fewer).items.map((p) => p.metadata?.name)).toEqual(['p5', 'p6']);
    records[2]!.state = 'notready';
    expect(ListPodSandboxResponse.decode(serialize(answer())).items.map((p) => p.state)).toEqual([0, 0, 1]);
    const reversed = serialize({ items: [...records].reverse().map(toCriSandbox) });
    expect(ListPodSandboxResponse.decode(reversed).items.map((p) => p.metadata?.name)).toEqual(['p6', 'p5', 'p4']);
    // Same items, different rest: a status answer's timestamp changes its bytes.
    const status = RUNTIME_SERVICE.podSandboxStatus!.responseSerialize as (r: PodSandboxStatusResponse) => Buffer;
    const at = (timestamp: bigint): PodSandboxStatusResponse => ({ status: toCriSandboxStatus(records[0]!), info: {}, containersStatuses: [], timestamp });
    expect(PodSandboxStatusResponse.decode(status(at(1n))).timestamp).toBe(1n);
    expect(PodSandboxStatusResponse.decode(status(at(2n))).timestamp).toBe(2n);
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
