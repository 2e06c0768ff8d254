/**
 * gRPC clients older than grpc-go 1.57 (kubelets up to Kubernetes 1.28, crictl
 * 1.26) send the unix socket's path as HTTP/2 `:authority`. This file sends
 * their bytes itself, with a raw HTTP/2 client: the authority as a Huffman-coded
 * literal with incremental indexing in the first request, then as an index into
 * the dynamic table, as grpc-go's HPACK encoder does.
 */
import { credentials } from '@grpc/grpc-js';
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RuntimeServiceClient, VersionRequest, VersionResponse } from '../../src/gen/runtime/v1/api';
import { HeaderField, huffmanEncode } from '../../src/grpc/hpack';
import { loadHarnessEnv } from '../harness/env';
import { AdapterProcess, startAdapter } from '../support/adapter-process';
import { getMetrics, metricsPort } from '../support/metrics-endpoint';
import { grpcCallFields, grpcMessage, RawH2Client } from '../support/raw-h2-client';

const NGHTTP2_PROTOCOL_ERROR = 1;

const versionCall = (authority: string, extra: HeaderField[] = []) => grpcCallFields(authority, undefined, extra);
const versionBody = grpcMessage(VersionRequest.encode({ version: '0.1.0' }).finish());
const header = (fields: HeaderField[] | undefined, name: string) => fields?.find((f) => f.name === name)?.value;

/** The daemon's count of CRI connections served natively and through the rewriter. */
async function connectionCounts(port: number): Promise<{ native: number; rewritten: number }> {
  const body = (await getMetrics(port)).body;
  const count = (path: string) => Number(new RegExp(`^cri_adapter_cri_connections_total\\{path="${path}"\\} (\\d+)`, 'm').exec(body)?.[1] ?? 0);
  return { native: count('native'), rewritten: count('rewritten') };
}

/** Resolves once `connections` more connections than `before` were counted (the count follows the first request). */
async function countedAfter(port: number, before: { native: number; rewritten: number }) {
  for (let i = 0; i < 50; i++) {
    const now = await connectionCounts(port);
    if (now.native + now.rewritten > before.native + before.rewritten) return { native: now.native - before.native, rewritten: now.rewritten - before.rewritten };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no connection counted');
}

describe('gRPC clients that send the socket path as :authority (grpc-go < 1.57)', () => {
  const h = loadHarnessEnv();
  let adapter: AdapterProcess;
  let port: number;

  beforeAll(async () => {
    adapter = await startAdapter({
      containerdAddress: h.containerd.address,
      cniConfDir: h.cni.confDir,
      namespace: 'cri-adapter-oldgrpc',
      extraArgs: ['--metrics-address', '127.0.0.1:0'],
    });
    port = metricsPort(adapter.logs());
  });
  afterAll(async () => {
    await adapter?.stop();
  });

  it('are refused by a bare Node HTTP/2 server: the bytes reproduce the bug', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'oldgrpc-bare-'));
    const sock = path.join(dir, 'bare.sock');
    const server = http2.createServer();
    server.on('stream', (s) => s.respond({ ':status': 200 }, { endStream: true }));
    await new Promise<void>((r) => server.listen(sock, r));
    const c = await RawH2Client.connect(sock);
    try {
      const r = await c.request(1, versionCall(sock), versionBody);
      expect(r.reset).toBe(NGHTTP2_PROTOCOL_ERROR);
      expect(r.headers).toBeUndefined();
    } finally {
      c.close();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('get answers to two calls on one connection (authority literal, then indexed)', async () => {
    const c = await RawH2Client.connect(adapter.socket);
    try {
      const first = await c.request(1, versionCall(adapter.socket), versionBody);
      const second = await c.request(3, versionCall(adapter.socket), versionBody);
      // What went on the wire: the first block carries the Huffman-coded path literally,
      // indexed (0x41 = literal with incremental indexing, name :authority); the second only an index.
      const coded = huffmanEncode(adapter.socket);
      expect(first.headerBlock.includes(coded)).toBe(true);
      expect(first.headerBlock.includes(Buffer.from([0x41]))).toBe(true);
      expect(second.headerBlock.includes(coded)).toBe(false);
      expect(second.headerBlock.length).toBeLessThan(10);
      for (const r of [first, second]) {
        expect(r.reset).toBeUndefined();
        expect(header(r.headers, ':status')).toBe('200');
        expect(header(r.trailers, 'grpc-status')).toBe('0');
        expect(r.data.readUInt32BE(1)).toBe(r.data.length - 5);
        expect(VersionResponse.decode(r.data.subarray(5))).toEqual({ version: '0.1.0', runtimeName: 'cri-adapter', runtimeVersion: expect.any(String), runtimeApiVersion: 'v1' });
      }
      expect(c.goaway).toBeUndefined();
    } finally {
      c.close();
    }
  });

  it('still meet every other check of Node\'s HTTP/2 layer: an uppercase header name resets only that stream', async () => {
    const c = await RawH2Client.connect(adapter.socket);
    try {
      const ok = await c.request(1, versionCall(adapter.socket), versionBody);
      expect(header(ok.trailers, 'grpc-status')).toBe('0');
      const bad = await c.request(3, versionCall(adapter.socket, [{ name: 'X-Upper', value: '1' }]), versionBody);
      expect(bad.reset).toBe(NGHTTP2_PROTOCOL_ERROR);
      // The connection and both HPACK tables are still in step.
      const after = await c.request(5, versionCall(adapter.socket), versionBody);
      expect(header(after.trailers, 'grpc-status')).toBe('0');
      expect(VersionResponse.decode(after.data.subarray(5)).runtimeName).toBe('cri-adapter');
    } finally {
      c.close();
    }
  });

  it('are served through the rewriter; a client waiting for SETTINGS first (as grpc-go) gets them before any request', async () => {
    const before = await connectionCounts(port);
    const c = await RawH2Client.connect(adapter.socket, { waitForSettings: true });
    try {
      const r = await c.request(1, versionCall(adapter.socket), versionBody);
      expect(header(r.trailers, 'grpc-status')).toBe('0');
      expect(await countedAfter(port, before)).toEqual({ native: 0, rewritten: 1 });
      expect(c.goaway).toBeUndefined();
    } finally {
      c.close();
    }
  });

  it('modern clients get their socket handed to the HTTP/2 server natively, and the ACK of our early SETTINGS never reaches it', async () => {
    const before = await connectionCounts(port);
    const c = await RawH2Client.connect(adapter.socket, { waitForSettings: true });
    try {
      const first = await c.request(1, versionCall('localhost'), versionBody);
      const second = await c.request(3, versionCall('localhost'), versionBody);
      for (const r of [first, second]) {
        expect(header(r.trailers, 'grpc-status')).toBe('0');
        expect(VersionResponse.decode(r.data.subarray(5)).runtimeName).toBe('cri-adapter');
      }
      expect(await countedAfter(port, before)).toEqual({ native: 1, rewritten: 0 });
      // Ours first, then the session's own; nghttp2 would GOAWAY on an ACK it never asked for.
      expect(c.settingsReceived).toBe(2);
      expect(await c.ping()).toBeLessThan(1000);
      expect(c.goaway).toBeUndefined();
    } finally {
      c.close();
    }
    // A grpc-js client (sends its request without waiting for SETTINGS) is served natively too.
    const mid = await connectionCounts(port);
    // Its own subchannel pool, so it does not reuse the harness client's connection.
    const js = new RuntimeServiceClient(`unix://${adapter.socket}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    try {
      const v = await new Promise<VersionResponse>((resolve, reject) => js.version({ version: '' }, (err, res) => (err ? reject(err) : resolve(res))));
      expect(v.runtimeName).toBe('cri-adapter');
      expect(await countedAfter(port, mid)).toEqual({ native: 1, rewritten: 0 });
    } finally {
      js.close();
    }
  });

  it('a connection that PINGs, or idles, before its first request is answered at once and served through the rewriter', async () => {
    const before = await connectionCounts(port);
    const pinger = await RawH2Client.connect(adapter.socket, { waitForSettings: true });
    const idle = await RawH2Client.connect(adapter.socket, { waitForSettings: true });
    try {
      expect(await pinger.ping()).toBeLessThan(1000);
      const r = await pinger.request(1, versionCall('localhost'), versionBody);
      expect(header(r.trailers, 'grpc-status')).toBe('0');
      // Past the sorting window (2 s) with nothing sent: served through the wrapper, which still works.
      await new Promise((res) => setTimeout(res, 2300));
      const late = await idle.request(1, versionCall(adapter.socket), versionBody);
      expect(header(late.trailers, 'grpc-status')).toBe('0');
      expect(await connectionCounts(port)).toEqual({ native: before.native, rewritten: before.rewritten + 2 });
      expect(pinger.goaway).toBeUndefined();
      expect(idle.goaway).toBeUndefined();
    } finally {
      pinger.close();
      idle.close();
    }
  });

  it('leave modern clients on the same socket working (grpc-js client calls in between)', async () => {
    const c = await RawH2Client.connect(adapter.socket);
    try {
      const [a, v] = await Promise.all([c.request(1, versionCall(adapter.socket), versionBody), adapter.client.runtime.version({ version: '' })]);
      expect(header(a.trailers, 'grpc-status')).toBe('0');
      expect(v.runtimeName).toBe('cri-adapter');
    } finally {
      c.close();
    }
  });
});

describe('with oldGrpcClients false', () => {
  const h = loadHarnessEnv();
  let adapter: AdapterProcess;

  beforeAll(async () => {
    adapter = await startAdapter({
      containerdAddress: h.containerd.address,
      cniConfDir: h.cni.confDir,
      namespace: 'cri-adapter-oldgrpc-off',
      extraArgs: ['--old-grpc-clients', 'false'],
    });
  });
  afterAll(async () => {
    await adapter?.stop();
  });

  it('modern clients are served as usual, and a path :authority meets Node\'s HTTP/2 layer unchanged', async () => {
    expect((await adapter.client.runtime.version({ version: '' })).runtimeName).toBe('cri-adapter');
    const c = await RawH2Client.connect(adapter.socket);
    try {
      const r = await c.request(1, versionCall(adapter.socket), versionBody);
      expect(r.reset).toBe(NGHTTP2_PROTOCOL_ERROR);
      const ok = await c.request(3, versionCall('localhost'), versionBody);
      expect(header(ok.trailers, 'grpc-status')).toBe('0');
    } finally {
      c.close();
    }
  });
});
