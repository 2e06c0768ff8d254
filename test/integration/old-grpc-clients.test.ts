/**
 * gRPC clients older than grpc-go 1.57 (kubelets up to Kubernetes 1.28, crictl
 * 1.26) send the unix socket's path as HTTP/2 `:authority`. This file sends
 * their bytes itself, with a raw HTTP/2 client: the authority as a Huffman-coded
 * literal with incremental indexing in the first request, then as an index into
 * the dynamic table, as grpc-go's HPACK encoder does.
 */
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VersionRequest, VersionResponse } from '../../src/gen/runtime/v1/api';
import { HeaderField, huffmanEncode } from '../../src/grpc/hpack';
import { loadHarnessEnv } from '../harness/env';
import { AdapterProcess, startAdapter } from '../support/adapter-process';
import { grpcCallFields, grpcMessage, RawH2Client } from '../support/raw-h2-client';

const NGHTTP2_PROTOCOL_ERROR = 1;

const versionCall = (authority: string, extra: HeaderField[] = []) => grpcCallFields(authority, undefined, extra);
const versionBody = grpcMessage(VersionRequest.encode({ version: '0.1.0' }).finish());
const header = (fields: HeaderField[] | undefined, name: string) => fields?.find((f) => f.name === name)?.value;

describe('gRPC clients that send the socket path as :authority (grpc-go < 1.57)', () => {
  const h = loadHarnessEnv();
  let adapter: AdapterProcess;

  beforeAll(async () => {
    adapter = await startAdapter({ containerdAddress: h.containerd.address, cniConfDir: h.cni.confDir, namespace: 'cri-adapter-oldgrpc' });
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
