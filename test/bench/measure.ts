import { performance } from 'node:perf_hooks';

export interface Sample {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export function summarize(durationsMs: number[]): Sample {
  const sorted = [...durationsMs].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean };
}

/**
 * Times `fn` sequentially after a warm-up. Two subjects compared in one
 * table are measured interleaved in rounds (see `compare`) so that machine
 * noise lands on both alike.
 */
export async function timeCalls(fn: () => Promise<unknown>, iterations: number, warmup = 50): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Measures subject and reference in alternating rounds and summarises both. */
export async function compare(
  subject: () => Promise<unknown>,
  reference: () => Promise<unknown>,
  opts: { rounds?: number; perRound?: number; warmup?: number } = {},
): Promise<{ subject: Sample; reference: Sample }> {
  const rounds = opts.rounds ?? 10;
  const perRound = opts.perRound ?? 200;
  const s: number[] = [];
  const r: number[] = [];
  await timeCalls(subject, 0, opts.warmup ?? 100);
  await timeCalls(reference, 0, opts.warmup ?? 100);
  for (let i = 0; i < rounds; i++) {
    s.push(...(await timeCalls(subject, perRound, 0)));
    r.push(...(await timeCalls(reference, perRound, 0)));
  }
  return { subject: summarize(s), reference: summarize(r) };
}
