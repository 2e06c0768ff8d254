import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './hpack-huffman-table';

/**
 * HPACK (RFC 7541): header compression for HTTP/2 header blocks. The adapter
 * needs its own codec only to rewrite what an old gRPC client sends before
 * Node's HTTP/2 layer sees it (src/grpc/authority-rewrite.ts); that requires
 * decoding with the client's dynamic table and encoding with a table the
 * server side mirrors.
 *
 * Names and values are latin1 strings: one char per octet, so any bytes
 * survive a decode/encode round trip unchanged.
 */

export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "never indexed" (RFC 7541 6.2.3): an intermediary must keep it that way. */
  neverIndexed?: boolean;
}

/** A header block that breaks RFC 7541: an HTTP/2 connection error of type COMPRESSION_ERROR. */
export class HpackError extends Error {}

/** RFC 7541 Appendix A. Index 1 is STATIC_TABLE[0]. */
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

const STATIC_FULL = new Map<string, number>();
const STATIC_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  const key = `${name}\0${value}`;
  if (!STATIC_FULL.has(key)) STATIC_FULL.set(key, i + 1);
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
});

/** RFC 7541 4.1: an entry's size is its name and value octets plus 32. */
const entrySize = (name: string, value: string): number => name.length + value.length + 32;

/** The dynamic table (RFC 7541 2.3.2): newest entry first, evicted from the end. */
class DynamicTable {
  readonly entries: Array<readonly [string, string]> = [];
  size = 0;
  constructor(public maxSize: number) {}

  add(name: string, value: string): void {
    const s = entrySize(name, value);
    this.evictTo(this.maxSize - s);
    // An entry larger than the table empties it and is not added (RFC 7541 4.4).
    if (s <= this.maxSize) {
      this.entries.unshift([name, value]);
      this.size += s;
    }
  }

  resize(maxSize: number): void {
    this.maxSize = maxSize;
    this.evictTo(maxSize);
  }

  private evictTo(limit: number): void {
    while (this.size > Math.max(0, limit) && this.entries.length) {
      const [n, v] = this.entries.pop()!;
      this.size -= entrySize(n, v);
    }
  }
}

// ---------------------------------------------------------------------------
// Huffman (RFC 7541 5.2, Appendix B)

/** Decoding tree: node n's children are TREE[2n] (bit 0) and TREE[2n+1] (bit 1); leaves are -(symbol+1). */
const TREE = (() => {
  const children: number[] = [0, 0];
  let nodes = 1;
  const add = (code: number, len: number, sym: number) => {
    let node = 0;
    for (let b = len - 1; b >= 0; b--) {
      const slot = 2 * node + ((code >>> b) & 1);
      if (b === 0) {
        children[slot] = -(sym + 1);
      } else {
        if (children[slot] === 0) {
          children[slot] = nodes++;
          children.push(0, 0);
        }
        node = children[slot]!;
      }
    }
  };
  for (let sym = 0; sym < 256; sym++) add(HUFFMAN_CODES[sym]!, HUFFMAN_LENGTHS[sym]!, sym);
  add(0x3fffffff, 30, 256);
  return Int32Array.from(children);
})();

export function huffmanDecode(src: Buffer): string {
  const out: number[] = [];
  let node = 0;
  // Bits read since the last complete symbol, and whether they were all 1s (a prefix of EOS).
  let pending = 0;
  let allOnes = true;
  for (const byte of src) {
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >>> b) & 1;
      const next = TREE[2 * node + bit]!;
      pending++;
      allOnes = allOnes && bit === 1;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === 256) throw new HpackError('Huffman-coded string contains EOS');
        out.push(sym);
        node = 0;
        pending = 0;
        allOnes = true;
      } else {
        node = next;
      }
    }
  }
  // RFC 7541 5.2: padding is at most 7 bits, all of them the high bits of EOS.
  if (pending > 7 || !allOnes) throw new HpackError('bad Huffman padding');
  return Buffer.from(out).toString('latin1');
}

export function huffmanEncode(s: string): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff;
    const code = HUFFMAN_CODES[c]!;
    let len = HUFFMAN_LENGTHS[c]!;
    // Feed at most 8 bits at a time so `acc` never exceeds 32 bits.
    while (len > 0) {
      const take = Math.min(8, len);
      acc = ((acc << take) | ((code >>> (len - take)) & ((1 << take) - 1))) >>> 0;
      bits += take;
      len -= take;
      while (bits >= 8) {
        bits -= 8;
        out.push((acc >>> bits) & 0xff);
      }
      acc &= (1 << bits) - 1;
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Buffer.from(out);
}

function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff]!;
  return Math.ceil(bits / 8);
}

// ---------------------------------------------------------------------------
// Primitives (RFC 7541 5.1, 5.2)

/** Integers larger than this are refused: no header block field needs them, and they could overflow. */
const MAX_INTEGER = 2 ** 30;

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  integer(prefixBits: number): number {
    if (this.done) throw new HpackError('header block ends inside an integer');
    const mask = (1 << prefixBits) - 1;
    let value = this.buf[this.pos++]! & mask;
    if (value < mask) return value;
    let shift = 0;
    for (;;) {
      if (this.done) throw new HpackError('header block ends inside an integer');
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (value > MAX_INTEGER) throw new HpackError('integer too large');
      if ((b & 0x80) === 0) return value;
    }
  }

  string(): string {
    if (this.done) throw new HpackError('header block ends before a string');
    const huffman = (this.buf[this.pos]! & 0x80) !== 0;
    const len = this.integer(7);
    if (len > this.buf.length - this.pos) throw new HpackError('string runs past the end of the header block');
    const raw = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return huffman ? huffmanDecode(raw) : raw.toString('latin1');
  }
}

function writeInteger(out: number[], firstByteFlags: number, prefixBits: number, value: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(firstByteFlags | value);
    return;
  }
  out.push(firstByteFlags | mask);
  value -= mask;
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

function writeString(out: number[], s: string, huffman: boolean): void {
  if (huffman && huffmanLength(s) < s.length) {
    const h = huffmanEncode(s);
    writeInteger(out, 0x80, 7, h.length);
    for (const b of h) out.push(b);
  } else {
    writeInteger(out, 0, 7, s.length);
    for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
  }
}

// ---------------------------------------------------------------------------

export interface DecoderLimits {
  /** SETTINGS_HEADER_TABLE_SIZE of the decoding side: the most a size update may ask for. */
  maxTableSize: number;
  /** Largest decoded header list accepted (RFC 7541 4.1 sizes), against decompression bombs. */
  maxHeaderListSize: number;
}

/** Decodes a connection's header blocks in order, keeping the dynamic table the encoder assumes. */
export class HpackDecoder {
  private readonly table: DynamicTable;

  constructor(private readonly limits: DecoderLimits = { maxTableSize: 4096, maxHeaderListSize: 1024 * 1024 }) {
    this.table = new DynamicTable(limits.maxTableSize);
  }

  /** One complete header block (HEADERS plus any CONTINUATION fragments, joined). */
  decode(block: Buffer): HeaderField[] {
    const r = new Reader(block);
    const fields: HeaderField[] = [];
    let listSize = 0;
    let sawField = false;
    const emit = (f: HeaderField) => {
      sawField = true;
      listSize += entrySize(f.name, f.value);
      if (listSize > this.limits.maxHeaderListSize) throw new HpackError('decoded header list too large');
      fields.push(f);
    };
    while (!r.done) {
      const b = block[r.pos]!;
      if (b & 0x80) {
        const [name, value] = this.lookup(r.integer(7));
        emit({ name, value });
      } else if (b & 0x40) {
        const index = r.integer(6);
        const name = index ? this.lookup(index)[0] : r.string();
        const value = r.string();
        this.table.add(name, value);
        emit({ name, value });
      } else if (b & 0x20) {
        // RFC 7541 4.2: size updates come first in a block, and never above the setting.
        if (sawField) throw new HpackError('dynamic table size update after a header field');
        const size = r.integer(5);
        if (size > this.limits.maxTableSize) throw new HpackError(`dynamic table size update to ${size} exceeds ${this.limits.maxTableSize}`);
        this.table.resize(size);
      } else {
        const neverIndexed = (b & 0x10) !== 0;
        const index = r.integer(4);
        const name = index ? this.lookup(index)[0] : r.string();
        const value = r.string();
        emit(neverIndexed ? { name, value, neverIndexed } : { name, value });
      }
    }
    return fields;
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const e = this.table.entries[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`index ${index} is past the dynamic table`);
    return e;
  }

  /** For tests: the dynamic table, newest first, and its size. */
  get dynamicTable(): { entries: ReadonlyArray<readonly [string, string]>; size: number } {
    return { entries: this.table.entries, size: this.table.size };
  }
}

export interface EncoderOptions {
  /** Add literals to the dynamic table (as most clients do); false keeps the peer's table empty. */
  indexing: boolean;
  huffman: boolean;
  /** The peer decoder's table size (SETTINGS_HEADER_TABLE_SIZE). */
  maxTableSize?: number;
}

export class HpackEncoder {
  private readonly table: DynamicTable;
  private pendingSizeUpdate: number | undefined;

  constructor(private readonly options: EncoderOptions) {
    this.table = new DynamicTable(options.maxTableSize ?? 4096);
  }

  /** Starts the next block with a dynamic table size update (e.g. 0 to empty the peer's table). */
  resizeTable(size: number): void {
    this.table.resize(size);
    this.pendingSizeUpdate = size;
  }

  encode(fields: readonly HeaderField[]): Buffer {
    const out: number[] = [];
    if (this.pendingSizeUpdate !== undefined) {
      writeInteger(out, 0x20, 5, this.pendingSizeUpdate);
      this.pendingSizeUpdate = undefined;
    }
    for (const f of fields) {
      const full = this.findFull(f);
      if (full && !f.neverIndexed) {
        writeInteger(out, 0x80, 7, full);
        continue;
      }
      const nameIndex = this.findName(f.name);
      if (f.neverIndexed) writeInteger(out, 0x10, 4, nameIndex);
      else if (this.options.indexing) writeInteger(out, 0x40, 6, nameIndex);
      else writeInteger(out, 0x00, 4, nameIndex);
      if (!nameIndex) writeString(out, f.name, this.options.huffman);
      writeString(out, f.value, this.options.huffman);
      if (this.options.indexing && !f.neverIndexed) this.table.add(f.name, f.value);
    }
    return Buffer.from(out);
  }

  private findFull(f: HeaderField): number {
    const s = STATIC_FULL.get(`${f.name}\0${f.value}`);
    if (s) return s;
    const i = this.table.entries.findIndex(([n, v]) => n === f.name && v === f.value);
    return i >= 0 ? STATIC_TABLE.length + 1 + i : 0;
  }

  private findName(name: string): number {
    const s = STATIC_NAME.get(name);
    if (s) return s;
    const i = this.table.entries.findIndex(([n]) => n === name);
    return i >= 0 ? STATIC_TABLE.length + 1 + i : 0;
  }
}
