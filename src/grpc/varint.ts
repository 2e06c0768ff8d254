/**
 * Protobuf base-128 varints for the places that lay out wire bytes by hand
 * (pre-encoded answers, content writes whose data must be copied only once).
 * Numbers here are lengths and tags: non-negative and below 2^53.
 */

/** Bytes the varint of `n` takes. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Writes the varint of `n` at `pos`; returns the position after it. */
export function writeVarint(out: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}
