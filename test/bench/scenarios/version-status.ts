import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { criClient, CriClient } from '../../support/cri-client';
import { grpcCallFields, grpcMessage, RawH2Client } from '../../support/raw-h2-client';
import { VersionRequest } from '../../../src/gen/runtime/v1/api';
import { compare, summarize } from '../measure';
import { cpuMs, pidWithArg } from '../proc';
import type { BenchRow, Scenario } from '../types';

/**
 * The cost of the adapter's gRPC edge: Version and Status through the
 * adapter against containerd's own Version called directly (the floor an
 * adapter in front of containerd cannot beat), and against containerd's
 * built-in CRI plugin answering the same CRI call.
 */
export const versionStatus: Scenario = {
  name: 'version-status',
  async run({ adapter, criPlugin, containerd, harness }) {
    // Sub-millisecond calls: warm both sides' JIT and connections well before measuring.
    const opts = { warmup: 2000, rounds: 10, perRound: 200 };
    const floor = () => containerd.version.version({});
    const rows: BenchRow[] = [];
    const v = await compare(() => adapter.client.runtime.version({ version: '' }), floor, opts);
    rows.push({ scenario: 'Version', subject: 'cri-adapter', reference: 'containerd Version (direct)', subjectSample: v.subject, referenceSample: v.reference });
    const s = await compare(() => adapter.client.runtime.status({ verbose: false }), floor, opts);
    rows.push({ scenario: 'Status', subject: 'cri-adapter', reference: 'containerd Version (direct)', subjectSample: s.subject, referenceSample: s.reference });
    const c = await compare(
      () => adapter.client.runtime.version({ version: '' }),
      () => criPlugin.runtime.version({ version: '' }), opts);
    rows.push({ scenario: 'Version', subject: 'cri-adapter', reference: "containerd's CRI plugin", subjectSample: c.subject, referenceSample: c.reference });
    const cs = await compare(
      () => adapter.client.runtime.status({ verbose: false }),
      () => criPlugin.runtime.status({ verbose: false }), opts);
    rows.push({ scenario: 'Status', subject: 'cri-adapter', reference: "containerd's CRI plugin", subjectSample: cs.subject, referenceSample: cs.reference });

    // Node's own floor: a grpc-js server doing nothing but answer Version, in its own process.
    const dir = mkdtempSync('/tmp/cri-adapter-bench-bare-');
    const socket = path.join(dir, 'bare.sock');
    const bare = spawn(process.execPath, [path.join(__dirname, '..', 'bare-grpc-server.js'), socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => bare.stdout!.once('data', () => resolve()));
    const bareClient = criClient(socket);
    try {
      const b = await compare(() => adapter.client.runtime.version({ version: '' }), () => bareClient.runtime.version({ version: '' }), opts);
      rows.push({
        scenario: 'Version',
        subject: 'cri-adapter',
        reference: 'bare grpc-js server (Node floor)',
        subjectSample: b.subject,
        referenceSample: b.reference,
        note: 'the bare server has no adapter code: the adapter/bare ratio is what the adapter adds; bare/containerd is Node vs Go gRPC',
      });
      const f = await compare(() => bareClient.runtime.version({ version: '' }), floor, opts);
      rows.push({ scenario: 'Version', subject: 'bare grpc-js server', reference: 'containerd Version (direct)', subjectSample: f.subject, referenceSample: f.reference });
      rows.push(...(await edgeCost(dir, socket, bareClient, opts)));
      rows.push(...(await serverCpu(dir, pidWithArg(harness.containerd.configPath), adapter.process.pid!, adapter.client, bare.pid!, bareClient, criPlugin)));
    } finally {
      bareClient.close();
      bare.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
    return rows;
  },
};

/**
 * What the adapter's own connection path (CriServer: each connection sorted,
 * then handed to grpc-js's connection injector natively or through the
 * authority rewriter) costs a call, on the bare server: a modern client
 * through it against grpc-js's bindAsync, and an old client (socket path as
 * :authority, every header block re-encoded in a JS stream) against a modern
 * one (its socket handed over), both through it, with the same raw HTTP/2 client.
 */
async function edgeCost(
  dir: string,
  bindSocket: string,
  bindClient: CriClient,
  opts: { warmup: number; rounds: number; perRound: number },
): Promise<BenchRow[]> {
  const socket = path.join(dir, 'edge.sock');
  const edge = spawn(process.execPath, [path.join(__dirname, '..', 'bare-grpc-server.js'), socket, 'edge'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => edge.stdout!.once('data', () => resolve()));
  const edgeClient = criClient(socket);
  let rawOld: RawH2Client | undefined;
  let rawNew: RawH2Client | undefined;
  const body = grpcMessage(VersionRequest.encode({ version: '0.1.0' }).finish());
  const rawCall = (c: RawH2Client, authority: string) => async () => {
    const r = await c.call(grpcCallFields(authority), body);
    if (r.reset !== undefined || !r.trailers?.some((f) => f.name === 'grpc-status' && f.value === '0')) throw new Error('raw Version call failed');
  };
  try {
    const m = await compare(() => edgeClient.runtime.version({ version: '' }), () => bindClient.runtime.version({ version: '' }), opts);
    // Connected just before their first call, as a client that dials to call: an idle one is sorted to the rewriter.
    rawOld = await RawH2Client.connect(socket, { waitForSettings: true });
    rawNew = await RawH2Client.connect(socket, { waitForSettings: true });
    await rawCall(rawOld, socket)();
    await rawCall(rawNew, 'localhost')();
    const o = await compare(rawCall(rawOld, socket), rawCall(rawNew, 'localhost'), opts);
    return [
      {
        scenario: 'Version',
        subject: 'bare server via CriServer',
        reference: 'bare server via bindAsync',
        subjectSample: m.subject,
        referenceSample: m.reference,
        note: 'grpc-js client (modern :authority): what the adapter\'s connection path costs a modern client (sorted, then handed over natively)',
      },
      {
        scenario: 'Version',
        subject: 'old client (path :authority, re-encoded)',
        reference: 'modern client (native socket)',
        subjectSample: o.subject,
        referenceSample: o.reference,
        note: 'raw HTTP/2 client, both through CriServer',
      },
    ];
  } finally {
    rawOld?.close();
    rawNew?.close();
    edgeClient.close();
    edge.kill('SIGTERM');
  }
}

/**
 * CPU time a server process spends per Version call, from /proc, rounds of
 * 1000 sequential calls alternating with containerd's CRI plugin (the
 * containerd process): the adapter, a bare grpc-js server, and Node's HTTP/2
 * server with no gRPC library answering pre-encoded bytes. The last is the
 * least CPU any Node server pays for a call, and so the floor of the
 * kubelet-like loop's CPU at node scale (calls per second times this).
 */
async function serverCpu(
  dir: string,
  containerdPid: number,
  adapterPid: number,
  adapterClient: CriClient,
  barePid: number,
  bareClient: CriClient,
  criPlugin: CriClient,
): Promise<BenchRow[]> {
  const socket = path.join(dir, 'http2.sock');
  const raw = spawn(process.execPath, [path.join(__dirname, '..', 'bare-grpc-server.js'), socket, 'http2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => raw.stdout!.once('data', () => resolve()));
  const rawClient = criClient(socket);
  const version = (c: CriClient) => () => c.runtime.version({ version: '' });
  const perCall = async (pid: number, call: () => Promise<unknown>, calls: number) => {
    const c0 = cpuMs(pid);
    for (let i = 0; i < calls; i++) await call();
    return (cpuMs(pid) - c0) / calls;
  };
  const against = async (pid: number, call: () => Promise<unknown>) => {
    const subject: number[] = [];
    const reference: number[] = [];
    await perCall(pid, call, 1000);
    await perCall(containerdPid, version(criPlugin), 1000);
    for (let round = 0; round < 5; round++) {
      subject.push(await perCall(pid, call, 1000));
      reference.push(await perCall(containerdPid, version(criPlugin), 1000));
    }
    return { subjectSample: summarize(subject), referenceSample: summarize(reference) };
  };
  try {
    const reference = "containerd's CRI plugin";
    const scenario = 'Version, server CPU ms per call';
    return [
      { scenario, subject: 'cri-adapter', reference, ...(await against(adapterPid, version(adapterClient))) },
      { scenario, subject: 'bare grpc-js server', reference, ...(await against(barePid, version(bareClient))) },
      {
        scenario,
        subject: "Node's HTTP/2, no gRPC library",
        reference,
        ...(await against(raw.pid!, version(rawClient))),
        note: 'pre-encoded answer: the least CPU a Node server spends on a call',
      },
    ];
  } finally {
    rawClient.close();
    raw.kill('SIGTERM');
  }
}
