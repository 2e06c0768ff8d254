import { ClientProtocolError, ClientStreamRewriter, sanitizeAuthority } from '../../../src/grpc/authority-rewrite';
import { HeaderField, HpackDecoder, HpackEncoder } from '../../../src/grpc/hpack';
import { grpcCallFields, h2Frame } from '../../support/raw-h2-client';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const frame = h2Frame;
const SETTINGS = frame(0x4, 0, 0, Buffer.from([0, 4, 0, 0x40, 0, 0]));
const dataFrame = (streamId: number) => frame(0x0, 0x1, streamId, Buffer.from([0, 0, 0, 0, 0]));

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}
function parseFrames(bytes: Buffer): Frame[] {
  expect(bytes.subarray(0, PREFACE.length)).toEqual(PREFACE);
  const frames: Frame[] = [];
  for (let pos = PREFACE.length; pos < bytes.length; ) {
    const len = bytes.readUIntBE(pos, 3);
    frames.push({ type: bytes[pos + 3]!, flags: bytes[pos + 4]!, streamId: bytes.readUInt32BE(pos + 5), payload: bytes.subarray(pos + 9, pos + 9 + len) });
    pos += 9 + len;
  }
  return frames;
}

/** What nghttp2 would decode from the rewritten stream: one decoder for the whole connection. */
function serverView(bytes: Buffer): Array<{ streamId: number; flags: number; fields?: HeaderField[]; type: number }> {
  const d = new HpackDecoder();
  const out: Array<{ streamId: number; flags: number; fields?: HeaderField[]; type: number }> = [];
  let block: Buffer[] = [];
  for (const fr of parseFrames(bytes)) {
    if (fr.type === 0x1 || fr.type === 0x9) {
      let p = fr.payload;
      if (fr.type === 0x1 && fr.flags & 0x8) p = p.subarray(1, p.length - p[0]!);
      if (fr.type === 0x1 && fr.flags & 0x20) p = p.subarray(5);
      block.push(p);
      if (fr.flags & 0x4) {
        out.push({ type: 0x1, streamId: fr.streamId, flags: fr.flags, fields: d.decode(Buffer.concat(block)) });
        block = [];
      }
    } else {
      out.push({ type: fr.type, streamId: fr.streamId, flags: fr.flags });
    }
  }
  return out;
}

function feedInPieces(bytes: Buffer, cut: number, rw = new ClientStreamRewriter()): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += cut) out.push(...rw.feed(bytes.subarray(i, i + cut)));
  return Buffer.concat(out);
}

const request = (authority: string): HeaderField[] => grpcCallFields(authority);

/** Two calls as grpc-go < 1.57 sends them: the authority a Huffman literal with indexing, then an index. */
function oldClientBytes(authority: string): Buffer {
  const e = new HpackEncoder({ indexing: true, huffman: true });
  const first = e.encode(request(authority));
  const second = e.encode(request(authority));
  expect(second.length).toBeLessThan(first.length);
  return Buffer.concat([PREFACE, SETTINGS, frame(0x1, 0x4, 1, first), dataFrame(1), frame(0x1, 0x4, 3, second), dataFrame(3)]);
}

describe('sanitizeAuthority', () => {
  it('percent-encodes what nghttp2 refuses and keeps valid authorities', () => {
    expect(sanitizeAuthority('/run/cri-adapter/cri-adapter.sock')).toBe('%2Frun%2Fcri-adapter%2Fcri-adapter.sock');
    expect(sanitizeAuthority('localhost')).toBe('localhost');
    expect(sanitizeAuthority('%2Frun%2Fx.sock')).toBe('%2Frun%2Fx.sock');
    expect(sanitizeAuthority('[::1]:443')).toBe('[::1]:443');
    expect(sanitizeAuthority('a b\x7f')).toBe('a%20b%7F');
  });
});

describe('ClientStreamRewriter', () => {
  it('rewrites an old client\'s path authority in both calls, however the bytes are cut', () => {
    const bytes = oldClientBytes('/run/cri-adapter/cri-adapter.sock');
    for (const cut of [1, 7, 9, 10, 33, 1000]) {
      const rw = new ClientStreamRewriter();
      const view = serverView(feedInPieces(bytes, cut, rw));
      expect(rw.rewrites).toBe(2);
      expect(view.map((v) => [v.type, v.streamId])).toEqual([[0x4, 0], [0x1, 1], [0x0, 1], [0x1, 3], [0x0, 3]]);
      for (const v of view.filter((x) => x.fields)) {
        expect(v.fields).toEqual(request('%2Frun%2Fcri-adapter%2Fcri-adapter.sock'));
        expect(v.flags & 0x4).toBe(0x4);
      }
    }
  });

  it('passes a modern client\'s bytes through unchanged', () => {
    const bytes = oldClientBytes('%2Frun%2Fcri-adapter%2Fcri-adapter.sock');
    const rw = new ClientStreamRewriter();
    expect(feedInPieces(bytes, 5, rw)).toEqual(bytes);
    expect(rw.rewrites).toBe(0);
  });

  it('passes everything after a clean first block through unparsed, even a later odd authority', () => {
    const e = new HpackEncoder({ indexing: true, huffman: true });
    const bytes = Buffer.concat([
      PREFACE,
      frame(0x1, 0x5, 1, e.encode(request('localhost'))),
      frame(0x1, 0x5, 3, e.encode(request('/odd/one'))),
      // Not even a header block: no longer looked at.
      frame(0x1, 0x4, 5, Buffer.from([0xff])),
    ]);
    const rw = new ClientStreamRewriter();
    expect(feedInPieces(bytes, 3, rw)).toEqual(bytes);
    expect(rw.rewrites).toBe(0);
  });

  it('rewrites every block of a connection whose first block needed it, indexed or not', () => {
    const e = new HpackEncoder({ indexing: true, huffman: true });
    const bytes = Buffer.concat([
      PREFACE,
      frame(0x1, 0x5, 1, e.encode(request('/run/x.sock'))),
      frame(0x1, 0x5, 3, e.encode(request('localhost'))),
      frame(0x1, 0x5, 5, e.encode(request('/run/x.sock'))),
    ]);
    const view = serverView(feedInPieces(bytes, 3));
    expect(view.map((v) => v.fields)).toEqual([request('%2Frun%2Fx.sock'), request('localhost'), request('%2Frun%2Fx.sock')]);
    expect(view.map((v) => v.flags & 0x1)).toEqual([1, 1, 1]);
  });

  it('reads padded, prioritised and CONTINUATION-split blocks, and splits large ones at 16384 bytes', () => {
    const e = new HpackEncoder({ indexing: true, huffman: false });
    const fields = [...request('/run/x.sock'), { name: 'x-big', value: 'v'.repeat(40000) }];
    const block = e.encode(fields);
    const prio = Buffer.from([0x80, 0, 0, 1, 15]);
    const pad = Buffer.alloc(6);
    const first = Buffer.concat([Buffer.from([pad.length]), prio, block.subarray(0, 100), pad]);
    const bytes = Buffer.concat([
      PREFACE,
      frame(0x1, 0x8 | 0x20 | 0x1, 1, first),
      frame(0x9, 0, 1, block.subarray(100, 20000)),
      frame(0x9, 0x4, 1, block.subarray(20000)),
    ]);
    const out = feedInPieces(bytes, 4096);
    const frames = parseFrames(out);
    expect(frames.every((fr) => fr.payload.length <= 16384)).toBe(true);
    expect(frames.map((fr) => fr.type)).toEqual([0x1, 0x9, 0x9]);
    expect(frames[0]!.flags).toBe(0x20 | 0x1);
    expect(frames[0]!.payload.subarray(0, 5)).toEqual(prio);
    expect(frames[2]!.flags).toBe(0x4);
    const view = serverView(out);
    expect(view[0]!.fields).toEqual([...request('%2Frun%2Fx.sock'), { name: 'x-big', value: 'v'.repeat(40000) }]);
  });

  it('hands a broken block to nghttp2 unchanged while passing through, and cuts the connection after a rewrite', () => {
    const garbage = Buffer.concat([PREFACE, frame(0x1, 0x4, 1, Buffer.from([0xbe])), dataFrame(1)]);
    expect(feedInPieces(garbage, 2)).toEqual(garbage);
    const interleaved = Buffer.concat([PREFACE, frame(0x1, 0, 1, new HpackEncoder({ indexing: true, huffman: true }).encode(request('x'))), dataFrame(1)]);
    expect(feedInPieces(interleaved, 3)).toEqual(interleaved);

    const e = new HpackEncoder({ indexing: true, huffman: true });
    const afterRewrite = Buffer.concat([PREFACE, frame(0x1, 0x4, 1, e.encode(request('/a/b'))), frame(0x1, 0x4, 3, Buffer.from([0xff]))]);
    expect(() => feedInPieces(afterRewrite, 1000)).toThrow(ClientProtocolError);
  });

  it('passes anything that is not an HTTP/2 preface through untouched', () => {
    const http1 = Buffer.from('GET / HTTP/1.1\r\nHost: /x\r\n\r\n');
    expect(feedInPieces(http1, 4)).toEqual(http1);
  });

  describe('after a SETTINGS frame of our own went out first', () => {
    const ACK = frame(0x4, 0x1, 0);
    const ping = frame(0x6, 0, 0, Buffer.alloc(8));

    it('drops the client\'s first SETTINGS ACK wherever it falls, and only that one', () => {
      const e = new HpackEncoder({ indexing: true, huffman: true });
      const block = frame(0x1, 0x4, 1, e.encode(request('localhost')));
      // grpc-go: ACK before the first request; grpc-js: the request first, ACK after.
      for (const order of [[SETTINGS, ACK, block, dataFrame(1), ACK], [SETTINGS, block, dataFrame(1), ACK, ACK]]) {
        const expected = Buffer.concat([PREFACE, ...order.filter((f, i) => f !== ACK || i !== order.indexOf(ACK))]);
        for (const cut of [1, 4, 9, 1000]) {
          const rw = new ClientStreamRewriter({ ownSettingsSent: true });
          expect(feedInPieces(Buffer.concat([PREFACE, ...order]), cut, rw)).toEqual(expected);
          expect(rw.done).toBe(true);
          expect(rw.rewriting).toBe(false);
        }
      }
    });

    it('is not done before both the ACK and a clean first block have come; an old client is rewritten', () => {
      const e = new HpackEncoder({ indexing: true, huffman: true });
      const clean = new ClientStreamRewriter({ ownSettingsSent: true });
      clean.feed(Buffer.concat([PREFACE, SETTINGS, frame(0x1, 0x4, 1, e.encode(request('localhost')))]));
      expect(clean.done).toBe(false);
      expect(clean.feed(ACK)).toEqual([]);
      expect(clean.done).toBe(true);

      const old = new ClientStreamRewriter({ ownSettingsSent: true });
      const out = Buffer.concat(old.feed(Buffer.concat([PREFACE, SETTINGS, ACK, frame(0x1, 0x4, 1, new HpackEncoder({ indexing: true, huffman: true }).encode(request('/run/x.sock')))])));
      expect(old.rewriting).toBe(true);
      expect(old.done).toBe(false);
      expect(serverView(out).filter((f) => f.type === 0x4)).toHaveLength(1);
      expect(serverView(out).find((f) => f.type === 0x1)?.fields).toContainEqual({ name: ':authority', value: '%2Frun%2Fx.sock' });
    });

    it('notes a PING, and keeps a non-HTTP/2 client\'s bytes whole', () => {
      const rw = new ClientStreamRewriter({ ownSettingsSent: true });
      expect(Buffer.concat(rw.feed(Buffer.concat([PREFACE, SETTINGS, ping])))).toEqual(Buffer.concat([PREFACE, SETTINGS, ping]));
      expect(rw.pingSeen).toBe(true);
      const http1 = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const rw1 = new ClientStreamRewriter({ ownSettingsSent: true });
      expect(feedInPieces(http1, 4, rw1)).toEqual(http1);
      expect(rw1.done).toBe(true);
    });
  });
});
