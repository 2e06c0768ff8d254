/**
 * Time for CRI log records: a nanosecond wall clock that never goes
 * backwards, and Go's RFC3339Nano text of it (the format the kubelet parses).
 */
const NS_PER_SEC = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;
/** How often the hrtime-based clock is compared with the wall clock. */
const RESYNC_INTERVAL_NS = 10n * NS_PER_SEC;
/** Wall clock ahead of us by more than this (a step, a suspend) moves us forward. */
const RESYNC_THRESHOLD_NS = 5n * NS_PER_MS;

/**
 * Nanosecond wall-clock time that never goes backwards. Date.now() has only
 * millisecond resolution, so the wall clock is read once as an anchor and
 * process.hrtime (CLOCK_MONOTONIC) supplies the nanoseconds since. Both clocks
 * are slewed alike by NTP; they part only on a clock step or a suspend. A
 * forward step is followed at the next resync; a backward step is not (the
 * log would go back in time) until rebase(), which the writer calls when it
 * starts a new file.
 */
export class CriClock {
  private baseWallNs = 0n;
  private baseHr = 0n;
  private lastSyncHr = 0n;
  private lastNs = 0n;

  constructor() {
    this.rebase();
  }

  rebase(): void {
    this.baseHr = process.hrtime.bigint();
    this.baseWallNs = BigInt(Date.now()) * NS_PER_MS;
    this.lastSyncHr = this.baseHr;
    this.lastNs = 0n;
  }

  nowNs(): bigint {
    const hr = process.hrtime.bigint();
    let t = this.baseWallNs + (hr - this.baseHr);
    if (hr - this.lastSyncHr > RESYNC_INTERVAL_NS) {
      this.lastSyncHr = hr;
      const wall = BigInt(Date.now()) * NS_PER_MS;
      if (wall - t > RESYNC_THRESHOLD_NS) {
        this.baseWallNs = wall;
        this.baseHr = hr;
        t = wall;
      }
    }
    if (t < this.lastNs) t = this.lastNs;
    this.lastNs = t;
    return t;
  }
}

let cachedSec = -1n;
let cachedSecText = '';

/**
 * Go's time.RFC3339Nano in UTC: "2006-01-02T15:04:05.999999999Z". The 9s
 * mean trailing zeros of the fraction are dropped, and the dot too when the
 * fraction is zero.
 */
export function formatRfc3339Nano(ns: bigint): string {
  const sec = ns / NS_PER_SEC;
  const frac = Number(ns - sec * NS_PER_SEC);
  if (sec !== cachedSec) {
    cachedSec = sec;
    cachedSecText = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  }
  if (frac === 0) return `${cachedSecText}Z`;
  let digits = String(frac).padStart(9, '0');
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 0x30) end--;
  digits = digits.slice(0, end);
  return `${cachedSecText}.${digits}Z`;
}
