import { HpackDecoder, HpackEncoder, HpackError, huffmanDecode, huffmanEncode } from '../../../src/grpc/hpack';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const f = (name: string, value: string) => ({ name, value });

// RFC 7541 Appendix C: the examples are the specification's own test vectors.
describe('HPACK (RFC 7541 Appendix C)', () => {
  it('C.2: decodes each representation, and indexes only the incremental literal', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))).toEqual([f('custom-key', 'custom-header')]);
    expect(d.dynamicTable).toEqual({ entries: [['custom-key', 'custom-header']], size: 55 });
    expect(new HpackDecoder().decode(hex('040c 2f73 616d 706c 652f 7061 7468'))).toEqual([f(':path', '/sample/path')]);
    const never = new HpackDecoder();
    expect(never.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))).toEqual([{ name: 'password', value: 'secret', neverIndexed: true }]);
    expect(never.dynamicTable.size).toBe(0);
    expect(new HpackDecoder().decode(hex('82'))).toEqual([f(':method', 'GET')]);
  });

  const requests = [
    [f(':method', 'GET'), f(':scheme', 'http'), f(':path', '/'), f(':authority', 'www.example.com')],
    [f(':method', 'GET'), f(':scheme', 'http'), f(':path', '/'), f(':authority', 'www.example.com'), f('cache-control', 'no-cache')],
    [f(':method', 'GET'), f(':scheme', 'https'), f(':path', '/index.html'), f(':authority', 'www.example.com'), f('custom-key', 'custom-value')],
  ];
  const plain = [
    '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '8286 84be 5808 6e6f 2d63 6163 6865',
    '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
  ];
  const huffman = [
    '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
    '8286 84be 5886 a8eb 1064 9cbf',
    '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
  ];
  const tableSizes = [57, 110, 164];

  it.each([
    ['C.3 (plain literals)', plain, false],
    ['C.4 (Huffman)', huffman, true],
  ])('%s: decodes three requests on one connection and encodes the same bytes', (_name, blocks, useHuffman) => {
    const d = new HpackDecoder();
    const e = new HpackEncoder({ indexing: true, huffman: useHuffman });
    blocks.forEach((b, i) => {
      expect(d.decode(hex(b))).toEqual(requests[i]);
      expect(d.dynamicTable.size).toBe(tableSizes[i]);
      expect(e.encode(requests[i]!).toString('hex')).toBe(b.replace(/\s+/g, ''));
    });
    expect(d.dynamicTable.entries).toEqual([
      ['custom-key', 'custom-value'],
      ['cache-control', 'no-cache'],
      [':authority', 'www.example.com'],
    ]);
  });
});

describe('HPACK codec', () => {
  it('Huffman-codes every octet value both ways', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1');
    expect(huffmanDecode(huffmanEncode(all))).toBe(all);
    expect(huffmanEncode('www.example.com').toString('hex')).toBe('f1e3c2e5f23a6ba0ab90f4ff');
  });

  it('refuses bad Huffman padding, EOS in a string, and indexes past the table', () => {
    // "a" is 00011 (5 bits): padding with 0s instead of 1s, and a whole padding byte.
    expect(() => huffmanDecode(Buffer.from([0x18]))).toThrow(HpackError);
    expect(() => huffmanDecode(Buffer.from([0x1f, 0xff]))).toThrow(/padding/);
    expect(() => huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toThrow(/EOS/);
    expect(() => new HpackDecoder().decode(hex('be'))).toThrow(/past the dynamic table/);
    expect(() => new HpackDecoder().decode(hex('80'))).toThrow(/index 0/);
    expect(() => new HpackDecoder().decode(hex('4005 6162'))).toThrow(/ends before a string|past the end/);
    expect(() => new HpackDecoder().decode(hex('ff'))).toThrow(/inside an integer/);
  });

  it('applies size updates only at a block start and never above the setting', () => {
    const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 20 });
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    expect(d.decode(hex('20 82'))).toEqual([f(':method', 'GET')]);
    expect(d.dynamicTable.size).toBe(0);
    expect(() => d.decode(hex('82 20'))).toThrow(/after a header field/);
    // 4097 = 31 + 4066: 3f e2 1f
    expect(() => d.decode(hex('3f e21f'))).toThrow(/exceeds 4096/);
  });

  it('evicts the oldest entries when the table is full, as encoder and decoder agree', () => {
    const e = new HpackEncoder({ indexing: true, huffman: true, maxTableSize: 100 });
    const d = new HpackDecoder({ maxTableSize: 100, maxHeaderListSize: 1 << 20 });
    e.resizeTable(100);
    for (let i = 0; i < 20; i++) {
      const fields = [f('x-key', `value-${i}`), f('x-key', `value-${i - 1}`), f('x-other', 'same')];
      expect(d.decode(e.encode(fields))).toEqual(fields);
      expect(d.dynamicTable.size).toBeLessThanOrEqual(100);
    }
    expect(d.dynamicTable.entries.length).toBeGreaterThan(0);
  });

  it('keeps never-indexed fields never indexed, and a non-indexing encoder leaves the table empty', () => {
    const e = new HpackEncoder({ indexing: false, huffman: false });
    const d = new HpackDecoder();
    const fields = [f(':method', 'POST'), f(':authority', 'localhost'), { name: 'authorization', value: 'secret', neverIndexed: true }];
    expect(d.decode(e.encode(fields))).toEqual(fields);
    expect(d.dynamicTable.size).toBe(0);
  });

  it('refuses a decoded header list larger than its limit (a small block that expands)', () => {
    const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 2000 });
    d.decode(new HpackEncoder({ indexing: true, huffman: false }).encode([f('big', 'x'.repeat(1000))]));
    expect(() => d.decode(hex('bebebe'))).toThrow(/too large/);
  });
});
