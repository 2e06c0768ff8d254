import * as zlib from 'node:zlib';
import * as net from 'node:net';
import { SPDY3_DICTIONARY } from '../../../src/streaming/spdy/dictionary';
import { controlFrame, ControlType, dataFrameHeader, decodeHeaderBlock, encodeHeaderBlock, FLAG_FIN, FrameReader, uint32Payload } from '../../../src/streaming/spdy/frames';
import { HeaderDeflater, HeaderInflater } from '../../../src/streaming/spdy/header-codec';
import { SpdySession, SpdyStream } from '../../../src/streaming/spdy/session';
import { resizeParser, statusText } from '../../../src/streaming/remote-command';

describe('SPDY frames', () => {
  it('reads control and data frames however the bytes are cut', () => {
    const bytes = Buffer.concat([
      controlFrame(ControlType.Ping, 0, uint32Payload(7)),
      dataFrameHeader(3, FLAG_FIN, 5),
      Buffer.from('hello'),
    ]);
    for (const cut of [1, 3, 8, 11, bytes.length]) {
      const reader = new FrameReader();
      const frames = [];
      for (let i = 0; i < bytes.length; i += cut) frames.push(...reader.push(bytes.subarray(i, i + cut)));
      expect(frames).toEqual([
        { control: true, type: ControlType.Ping, flags: 0, payload: uint32Payload(7) },
        { control: false, streamId: 3, flags: FLAG_FIN, payload: Buffer.from('hello') },
      ]);
    }
  });

  it('refuses another SPDY version', () => {
    const frame = controlFrame(ControlType.Ping, 0, uint32Payload(1));
    frame.writeUInt16BE(0x8002, 0);
    expect(() => new FrameReader().push(frame)).toThrow(/version 2/);
  });

  it('round-trips header blocks with lower-cased names', () => {
    const block = encodeHeaderBlock({ StreamType: 'stdout', port: '8080' });
    expect(decodeHeaderBlock(block)).toEqual({ streamtype: 'stdout', port: '8080' });
    expect(() => decodeHeaderBlock(block.subarray(0, block.length - 2))).toThrow(/truncated/);
  });
});

describe('SPDY header compression', () => {
  it('keeps one zlib context per direction across blocks, primed with the SPDY/3 dictionary', async () => {
    const deflater = new HeaderDeflater();
    const inflater = new HeaderInflater();
    const blocks: Array<Record<string, string>> = [{ streamtype: 'error' }, { streamtype: 'stdout' }, { streamtype: 'stderr' }, {}];
    const sizes: number[] = [];
    for (const h of blocks) {
      const compressed = await deflater.encode(h);
      sizes.push(compressed.length);
      expect(await inflater.decode(compressed)).toEqual(h);
    }
    // Later blocks refer back to earlier ones: a context per block could not shrink them.
    expect(sizes[2]!).toBeLessThan(sizes[0]!);
    // The first block announces the dictionary (FDICT), whose Adler-32 a peer checks.
    const fresh = await new HeaderDeflater().encode({});
    expect(fresh[1]! & 0x20).toBe(0x20);
    expect(fresh.readUInt32BE(2)).toBe(adler32(SPDY3_DICTIONARY));
    deflater.close();
    inflater.close();
  });
});

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of buf) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

describe('SpdySession', () => {
  it('answers SYN_STREAM with SYN_REPLY, echoes PING, and carries data both ways with FIN', async () => {
    const [server, client] = await socketPair();
    const session = new SpdySession(server, Buffer.alloc(0));
    const opened = new Promise<SpdyStream>((resolve) => session.once('stream', resolve));
    const deflate = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY });
    const header = await new Promise<Buffer>((resolve) => {
      const out: Buffer[] = [];
      deflate.on('data', (c: Buffer) => out.push(c));
      deflate.write(encodeHeaderBlock({ streamtype: 'stdin' }));
      deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)));
    });
    const received: Buffer[] = [];
    client.on('data', (c: Buffer) => received.push(c));
    client.write(controlFrame(ControlType.SynStream, 0, Buffer.concat([uint32Payload(1, 0), Buffer.alloc(2), header])));
    client.write(Buffer.concat([dataFrameHeader(1, FLAG_FIN, 3), Buffer.from('abc')]));
    client.write(controlFrame(ControlType.Ping, 0, uint32Payload(9)));
    const stream = await opened;
    expect(stream.headers).toEqual({ streamtype: 'stdin' });
    const body: Buffer[] = [];
    stream.on('data', (c: Buffer) => body.push(c));
    await new Promise((resolve) => stream.once('end', resolve));
    expect(Buffer.concat(body).toString()).toBe('abc');
    await new Promise<void>((resolve) => stream.end(Buffer.from('xyz'), () => resolve()));
    await new Promise((r) => setTimeout(r, 50));
    const frames = new FrameReader().push(Buffer.concat(received));
    expect(frames.map((f) => (f.control ? ControlType[f.type] : `DATA ${f.streamId} ${f.payload.toString()} fin=${f.flags & FLAG_FIN}`))).toEqual([
      'SynReply',
      'Ping',
      'DATA 1 xyz fin=0',
      'DATA 1  fin=1',
    ]);
    session.close();
    client.destroy();
  });
});

function socketPair(): Promise<[net.Socket, net.Socket]> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      srv.close();
      resolve([s, client]);
    });
    let client: net.Socket;
    srv.listen(0, '127.0.0.1', () => {
      client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    });
  });
}

describe('remote command details', () => {
  it('reads terminal sizes from a JSON stream cut anywhere', () => {
    const sizes: Array<{ width: number; height: number }> = [];
    const feed = resizeParser((s) => sizes.push(s));
    const text = '{"Width":80,"Height":24}\n{"Width":120,"Height":40}\nnot json}{"Width":1,"Height":2}';
    for (const ch of text) feed(Buffer.from(ch));
    expect(sizes).toEqual([
      { width: 80, height: 24 },
      { width: 120, height: 40 },
      { width: 1, height: 2 },
    ]);
  });

  it('reports outcomes as Kubernetes does: v4 JSON status, text before v4', () => {
    expect(JSON.parse(statusText('v4.channel.k8s.io', { exitCode: 0 }, '[true]'))).toEqual({ metadata: {}, status: 'Success' });
    expect(JSON.parse(statusText('v4.channel.k8s.io', { exitCode: 3 }, '[sh -c exit 3]'))).toEqual({
      metadata: {},
      status: 'Failure',
      message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
    expect(statusText('v2.channel.k8s.io', { exitCode: 0 }, '[true]')).toBe('');
    expect(statusText('v3.channel.k8s.io', { exitCode: 2 }, '[x]')).toMatch(/exit code 2/);
    expect(statusText('channel.k8s.io', { error: 'container gone' }, '[x]')).toBe('container gone');
  });
});
