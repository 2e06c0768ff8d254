/**
 * CRI log records formatted for one writev: "<timestamp> <stream> <F|P> <content>\n"
 * headers and short content copied into pooled slabs, long content
 * referenced where it already lies.
 */
import { CriClock, formatRfc3339Nano } from './cri-log-clock';

export type StreamName = 'stdout' | 'stderr';

const LF = 0x0a;

/** Size of the reusable buffers records are formatted into. */
const SLAB_BYTES = 128 * 1024;
/** Free slabs kept for reuse, shared by all writers (one process-wide bound, not one per container). */
const MAX_FREE_SLABS = 32;
/** Content at least this long is handed to writev by reference instead of being copied. */
const ZERO_COPY_MIN = 1024;
/** Below this many bytes a JS loop copies faster than Buffer#copy (which builds a view per call). */
const SMALL_COPY = 64;

const freeSlabs: Buffer[] = [];

/**
 * Freshly allocated 64 KiB+ Buffers cost more than the copy into them
 * (measured here: 1.7 GB/s for alloc+copy against 12.6 GB/s for a copy into a
 * reused buffer), so record formatting reuses slabs once writev is done.
 */
function takeSlab(min: number): Buffer {
  if (min <= SLAB_BYTES) return freeSlabs.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
  return Buffer.allocUnsafeSlow(min);
}

function returnSlab(slab: Buffer): void {
  if (slab.length === SLAB_BYTES && freeSlabs.length < MAX_FREE_SLABS) freeSlabs.push(slab);
}

/**
 * The records produced from one input chunk, as a list of buffers for one
 * writev: headers and short content copied into pooled slabs, long content
 * referenced where it already lies.
 */
export class RecordBatch {
  readonly parts: Buffer[] = [];
  private readonly slabs: Buffer[] = [];
  private cur: Buffer | null = null;
  /** Start of the part of `cur` not yet pushed to `parts`. */
  private segStart = 0;
  private pos = 0;
  records = 0;
  private headerF: Buffer | null = null;
  private headerP: Buffer | null = null;
  private ts: string | null = null;

  constructor(
    private readonly clock: CriClock,
    private readonly stream: StreamName,
  ) {}

  /** One record whose content is src[start, end). */
  add(tag: 'F' | 'P', src: Buffer, start: number, end: number): void {
    const header = this.header(tag);
    const n = end - start;
    if (n >= ZERO_COPY_MIN) {
      this.copyIn(header, 0, header.length);
      this.refer(src.subarray(start, end));
    } else {
      this.reserve(header.length + n + 1);
      // set() of a whole Buffer creates no view: the cheapest copy for the header.
      this.cur!.set(header, this.pos);
      this.pos += header.length;
      this.copyIn(src, start, end);
    }
    this.putLf();
  }

  /** One record whose content is the concatenation of `segs`. */
  addList(tag: 'F' | 'P', segs: readonly Buffer[]): void {
    const header = this.header(tag);
    this.copyIn(header, 0, header.length);
    for (const seg of segs) {
      if (seg.length >= ZERO_COPY_MIN) this.refer(seg);
      else this.copyIn(seg, 0, seg.length);
    }
    this.putLf();
  }

  /** The buffers to write; `release` hands the slabs back once they are written. */
  finish(): { parts: Buffer[]; release: () => void } {
    this.closeSegment();
    const slabs = this.slabs;
    return { parts: this.parts, release: () => slabs.forEach(returnSlab) };
  }

  private header(tag: 'F' | 'P'): Buffer {
    this.records++;
    if (tag === 'F') return (this.headerF ??= this.makeHeader('F'));
    return (this.headerP ??= this.makeHeader('P'));
  }

  private makeHeader(tag: 'F' | 'P'): Buffer {
    // Every record of a batch carries the same instant: the chunk's arrival.
    this.ts ??= formatRfc3339Nano(this.clock.nowNs());
    return Buffer.from(`${this.ts} ${this.stream} ${tag} `, 'latin1');
  }

  private reserve(n: number): void {
    if (this.cur && this.cur.length - this.pos >= n) return;
    this.closeSegment();
    this.cur = takeSlab(n);
    this.slabs.push(this.cur);
    this.segStart = 0;
    this.pos = 0;
  }

  private copyIn(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.reserve(n);
    const out = this.cur!;
    let o = this.pos;
    if (n > SMALL_COPY) {
      src.copy(out, o, start, end);
      o += n;
    } else {
      for (let i = start; i < end; i++) out[o++] = src[i]!;
    }
    this.pos = o;
  }

  private putLf(): void {
    this.reserve(1);
    this.cur![this.pos++] = LF;
  }

  private refer(buf: Buffer): void {
    this.closeSegment();
    this.parts.push(buf);
  }

  private closeSegment(): void {
    if (this.cur && this.pos > this.segStart) {
      this.parts.push(this.cur.subarray(this.segStart, this.pos));
      this.segStart = this.pos;
    }
  }
}
