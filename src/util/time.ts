/** Wall-clock time in nanoseconds since the epoch, the unit of every CRI timestamp. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
