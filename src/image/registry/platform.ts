import { endianness } from 'os';
import type { Descriptor, Platform } from './types';

/**
 * Which manifest of a multi-platform image this node runs. Names follow Go
 * (GOOS/GOARCH) because that is what image indexes are written in.
 */

const NODE_TO_GO_ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
  mips64el: 'mips64le',
};

/** Spellings seen in the wild that mean the same architecture. */
const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
  i386: { architecture: '386' },
};

export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias.architecture;
    variant = variant ?? alias.variant;
  }
  // These variants are the architecture's baseline, so they say nothing.
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return variant ? { ...p, os, architecture, variant } : { ...p, os, architecture, variant: undefined };
}

/** The platform of the machine this process runs on. */
export function nodePlatform(): Platform {
  const arch = process.arch as string;
  if (arch === 'ppc64') return { os: 'linux', architecture: endianness() === 'LE' ? 'ppc64le' : 'ppc64' };
  const architecture = NODE_TO_GO_ARCH[arch] ?? arch;
  if (architecture === 'arm64') return { os: 'linux', architecture, variant: 'v8' };
  if (architecture === 'arm') {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    return { os: 'linux', architecture, variant: `v${typeof v === 'string' || typeof v === 'number' ? v : '7'}` };
  }
  return { os: 'linux', architecture };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * How well a candidate fits the wanted platform: 0 is exact, larger is a
 * worse but still runnable fit, undefined is no fit. A candidate without
 * a variant is accepted after exact matches; for 32-bit arm, older
 * variants run on newer cores, so v7 accepts v6 and v5 in that order.
 */
export function platformRank(want: Platform, candidate: Platform): number | undefined {
  const w = normalizePlatform(want);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return undefined;
  // Keeping explicit baselines distinct from "no variant" lets arm64/v8 beat a bare arm64.
  const wantRaw = (want.variant ?? '').toLowerCase();
  const candRaw = (candidate.variant ?? '').toLowerCase();
  if (wantRaw === candRaw) return 0;
  if (w.variant === c.variant) return c.variant === undefined && candRaw === '' ? 1 : 0;
  if (c.variant === undefined) return 1;
  if (w.architecture === 'arm' && w.variant && c.variant) {
    const wn = Number(w.variant.slice(1));
    const cn = Number(c.variant.slice(1));
    if (Number.isInteger(wn) && Number.isInteger(cn) && cn < wn) return 1 + (wn - cn);
  }
  return undefined;
}

/** Attestation and signature entries in buildx indexes are not runnable images. */
function isRunnable(d: Descriptor): boolean {
  if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return false;
  return !(d.platform && d.platform.os === 'unknown' && d.platform.architecture === 'unknown');
}

export interface PlatformChoice {
  descriptor?: Descriptor;
  /** Platforms the index offers, for the error when nothing fits. */
  available: string[];
}

/**
 * Picks the best manifest for `want`; ties go to the earlier entry, as the
 * index order is the publisher's preference. Entries with no platform at
 * all are a last resort: single-platform images pushed as an index exist.
 */
export function selectPlatform(manifests: Descriptor[], want: Platform): PlatformChoice {
  let best: { d: Descriptor; rank: number } | undefined;
  const available: string[] = [];
  for (const d of manifests) {
    if (!isRunnable(d)) continue;
    if (!d.platform) {
      available.push('(no platform)');
      if (!best) best = { d, rank: 100 };
      continue;
    }
    available.push(formatPlatform(d.platform));
    const rank = platformRank(want, d.platform);
    if (rank !== undefined && (!best || rank < best.rank)) best = { d, rank };
  }
  return { descriptor: best?.d, available: [...new Set(available)] };
}
